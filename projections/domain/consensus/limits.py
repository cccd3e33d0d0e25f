"""The engine's own bounds: what keeps the work for one document bounded, whatever it is given.

The event contract (`events/bounds.py`) already refuses outputs deeper than 32, lists
longer than 2,000 items or more than 50,000 values; these limits make the engine safe
even when handed something larger (a direct call, an old log), never raising
`RecursionError` and never doing more than the bound stated in docs/metrics.md.
"""
from __future__ import annotations

MAX_WALK_DEPTH = 32
"""Containers nested deeper than this are one opaque leaf, voted by exact JSON equality."""

EXACT_ALIGNMENT_WORK = 50_000
"""A document whose lists are small in total (sum, over passes and over every list of a
pass, of items x values inside the list) has every list aligned exactly (Hungarian, as in
engine version 1); a larger one has every list aligned by the linear banded path."""

BAND_CANDIDATES = 8
"""Linear path: rows each unmatched item is compared with (the nearest by expected position)."""

FIELD_CANDIDATES = 2
"""Linear path: more rows per unmatched object item, found by an identical scalar field."""

TEXT_COMPARE_CHARS = 2_000
"""Graded text similarity looks at the first this many characters of each string."""

SIMILARITY_DEPTH = 3
"""Item similarity (for alignment) looks this many containers deep; below, exact JSON equality."""

NESTED_EXACT_PAIRS = 64
"""Item similarity pairs up two nested lists by assignment only up to this many item pairs;
longer ones count their identical items."""

CACHED_TEXT_CHARS = 256
"""Only strings up to this length are kept in the normalization caches (bounded memory)."""
