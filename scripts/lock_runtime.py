"""Print requirements.lock: the exact versions of runledger's runtime dependencies.

    .venv/bin/python scripts/lock_runtime.py > requirements.lock

Walks `dependencies` of the installed runledger (extras included, e.g.
sqlalchemy[asyncio]) through importlib.metadata, so test and bench packages in the
same venv stay out. Markers for other platforms or Pythons are skipped.
"""
from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement


def closure(root: str) -> dict[str, str]:
    pinned: dict[str, str] = {}
    todo = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        dist = distribution(name)
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            key = _canonical(req.name)
            try:
                version = distribution(req.name).version
            except PackageNotFoundError:
                continue
            if key not in pinned or req.extras:
                pinned[key] = version
                todo.append((req.name, frozenset(req.extras)))
    return pinned


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    print("# Exact runtime dependency versions; used as pip constraints (pip install -c requirements.lock).")
    print("# Regenerate: .venv/bin/python scripts/lock_runtime.py > requirements.lock (then run the golden test).")
    for name, version in sorted(closure("runledger").items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
