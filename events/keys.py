"""Composite keys, composed so that different parts can never give the same key.

The first keys joined their parts with a separator (`block:{org}:{workflow}:{block}`,
`{run}/{document}`), which is ambiguous once a part holds the separator: `x:y/z` and
`x/y:z` met. A joined key is unambiguous when at most one part, always the same one,
may hold the separator: the other parts split off from both ends. So `compose` keeps
the joined form exactly then (every key ever written from ordinary ids stays what it
was: existing logs and read models need no migration), and otherwise writes the parts
as a JSON array behind STRUCTURED, a control character. The contract refuses control
characters in every id, so a structured key never equals a joined one.
"""
from __future__ import annotations

from typing import Sequence

import orjson

STRUCTURED = "\x1f"


def compose(parts: Sequence[str], sep: str, free: int) -> str:
    """One key for `parts`; only `parts[free]` may hold `sep` in the joined form."""
    if all(sep not in part for i, part in enumerate(parts) if i != free):
        return sep.join(parts)
    return STRUCTURED + orjson.dumps(list(parts)).decode()


def block_key(org_id: str, workflow_id: str, block_id: str) -> str:
    """The aggregate id of a block definition (and its read-model key)."""
    return compose(("block", org_id, workflow_id, block_id), ":", free=3)


def result_key(run_id: str, document_id: str) -> str:
    """What a result id is derived from."""
    return compose((run_id, document_id), "/", free=1)


def fact_key(aggregate_id: str, *rest: object, free: int = 1) -> str:
    """The natural key of a fact (it becomes the event id): aggregate id, then its parts."""
    return compose((aggregate_id, *map(str, rest)), "/", free=free)
