"""Mount the console on the API application (one call from services/api/app.py)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from ..api.errors import ApiError
from .pages import auth, experiments, metrics, notary, operations, run, runs
from .render import error_page
from .session import SignInRequired, install_sessions

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Routes under /console, its static files, `/` -> /console, and HTML answers for
    console errors (API paths keep their JSON errors). Call after errors.install."""
    router = APIRouter(include_in_schema=False)
    for module in (auth, runs, run, metrics, experiments, operations, notary):
        router.include_router(module.router)
    router.add_api_route("/", _home, methods=["GET"])
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    api_error = app.exception_handlers[ApiError]

    async def console_or_api_error(request: Request, exc: ApiError):
        if request.url.path.startswith("/console"):
            return error_page(request, exc.status, exc.message)
        return await api_error(request, exc)

    async def sign_in(request: Request, exc: SignInRequired):
        if request.headers.get("hx-request"):  # a polling fragment: send the whole page to sign-in
            return RedirectResponse("/console/login", 303, headers={"HX-Redirect": "/console/login"})
        return RedirectResponse("/console/login", 303)

    app.add_exception_handler(ApiError, console_or_api_error)
    app.add_exception_handler(SignInRequired, sign_in)
    install_sessions(app)


async def _home():
    return RedirectResponse("/console", 307)
