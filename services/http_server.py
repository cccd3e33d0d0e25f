"""uvicorn's server without its signal handlers: the process's shutdown grace handles SIGTERM
and SIGINT (services/shutdown.py) and tells the server to stop (`should_exit`).

uvicorn's own handlers raised a caught signal again once its server was down: with the
default handler back that ended the process on the spot (exit -15, nothing closed, the fold
pool's semaphores leaked), and a second server in the process (a projector's health port)
passed the signal on as if a second one had come."""
from __future__ import annotations

import contextlib

import uvicorn


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        yield
