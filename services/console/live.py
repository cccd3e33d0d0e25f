"""Live updates by polling versions of what the page shows, never the ledger's offsets.

A live page carries a poller, `<div id="...-poll" hx-get=... hx-trigger="every 1s">`, whose
URL holds `since=<token>`: the version of what was drawn (the organisation's for the runs
list, the run's for a run page; projections/store/row_versions.py), behind the read-model
version it was read from. A poll reads that one version: unchanged, the answer is an empty
204 and htmx leaves the page alone. Changed, the answer is a new poller and, as htmx
out-of-band swaps, only what changed: the rows of the runs list whose version moved (and
those that came, went or moved on the page), a run's counters and its changed document
rows. After a rebuild switched the read model (the versions start again), the answer asks
htmx to reload the page. A token holds nothing but this organisation's own version.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from fastapi import Response

from ..api.context import Ctx

POLL = "every 1s"


def token(ctx: Ctx, version: int) -> str:
    return f"{_read_model(ctx)}.{version}"


def since(ctx: Ctx, raw: str | None) -> int | None:
    """The version a poll's token names; None when it names none of this read model's
    (absent, malformed, or from before a switch)."""
    model, _, version = (raw or "").partition(".")
    if model != str(_read_model(ctx)) or not version.isdigit():
        return None
    return int(version)


def _read_model(ctx: Ctx) -> int:
    read_model = ctx.runtime.read_model
    return read_model.version if read_model is not None else 1


def unchanged() -> Response:
    return Response(status_code=204)


def reload() -> Response:
    """The page was drawn from another read model (a rebuild switched): draw it again."""
    return Response(status_code=200, headers={"HX-Refresh": "true"})


def row_key(run_id: str) -> str:
    """A short, CSS- and URL-safe name for a run's row (any run id may be a DOM id, not a selector)."""
    return base64.urlsafe_b64encode(hashlib.blake2b(run_id.encode(), digest_size=8).digest()).decode().rstrip("=")


def shown_text(rows: list[tuple[str, int]]) -> str:
    """The `shown` parameter: the page's rows, in order, as `key.version` pairs."""
    return ",".join(f"{key}.{version}" for key, version in rows)


def parse_shown(raw: str | None) -> list[tuple[str, int]]:
    pairs = []
    for part in (raw or "").split(","):
        key, _, version = part.partition(".")
        if key and version.isdigit():
            pairs.append((key, int(version)))
    return pairs


@dataclass(frozen=True)
class RowChanges:
    """How to turn the rows shown into the page's rows now, in out-of-band swaps:
    `deleted` first, then `drawn` in page order, each (key, the key it goes after or None
    for the top, or "" to replace the row where it stands)."""

    deleted: list[str]
    drawn: list[tuple[str, str | None]]

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.drawn]


def row_changes(shown: list[tuple[str, int]], now: list[tuple[str, int]]) -> RowChanges:
    """Rows that stay in the same relative order and kept their version are left alone;
    a changed row is replaced where it stands; rows that came or moved are (re)inserted
    after their predecessor; rows that went or moved are deleted. At most a page of rows."""
    position = {key: i for i, (key, _) in enumerate(shown)}
    version = dict(shown)
    staying = set(_longest_increasing([key for key, _ in now if key in position], position))
    deleted = [key for key, _ in shown if key not in staying]
    drawn: list[tuple[str, str | None]] = []
    before: str | None = None
    for key, current in now:
        if key not in staying:
            drawn.append((key, before))
        elif version[key] != current:
            drawn.append((key, ""))
        before = key
    return RowChanges(deleted, drawn)


def _longest_increasing(keys: list[str], position: dict[str, int]) -> list[str]:
    """The longest run of `keys` whose old positions increase (they need not move). O(n^2), n <= a page."""
    best: list[list[str]] = []
    for i, key in enumerate(keys):
        longest = max((best[j] for j in range(i) if position[keys[j]] < position[key]), key=len, default=[])
        best.append(longest + [key])
    return max(best, key=len, default=[])
