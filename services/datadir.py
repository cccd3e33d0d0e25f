"""The data directory holds the whole ledger (log, read model, keys): only its owner
may read it. The directory is made 0700 and every SQLite file in it 0600, whatever the
umask: each file is created 0600 before SQLite opens it, and SQLite gives a database's
-wal, -shm and -journal files the mode of the database file itself."""
from __future__ import annotations

import os
from pathlib import Path

from .settings import Settings

_COMPANIONS = ("", "-wal", "-shm", "-journal")


def secure_data_dir(settings: Settings) -> None:
    directory = settings.data_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    for path in sqlite_files(settings):
        private_file(path)


def sqlite_files(settings: Settings) -> list[Path]:
    urls = [settings.read_model_url, settings.control_url]
    files = [Path(url.split(":///", 1)[1]) for url in urls if url.startswith("sqlite") and ":///" in url]
    if settings.embedded:
        files.append(settings.log_path)
    return [path for path in dict.fromkeys(files) if str(path) != ":memory:"]


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing; make it and its companions 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, 0o600)
