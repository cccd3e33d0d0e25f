"""How votes are compared: text normalization, number closeness, canonical forms."""
from __future__ import annotations

import enum
import json
import math
import unicodedata
from fractions import Fraction
from functools import lru_cache
from typing import Any

import orjson


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent.ABSENT
"""A pass that said nothing at a path (failed, key missing, row missing); not JSON null."""

_HUGE = 2.0**1000


@lru_cache(maxsize=1 << 16)
def normalize_text(text: str) -> str:
    """Casefold, strip accents, turn each run of punctuation/whitespace into one space."""
    out: list[str] = []
    gap = False
    for ch in unicodedata.normalize("NFKD", text.casefold()):
        category = unicodedata.category(ch)
        if category == "Mn":
            continue
        if category[0] in "PZ" or category == "Cc":
            gap = True
            continue
        if gap and out:
            out.append(" ")
        gap = False
        out.append(ch)
    return "".join(out)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numbers_close(a: float, b: float, tolerance: float) -> bool:
    """|a - b| <= tolerance * max(|a|, |b|): relative, so 0 only matches 0."""
    if a == b:
        return True
    if a != a or b != b:  # NaN matches only NaN
        return a != a and b != b
    scale = max(abs(a), abs(b))
    if scale >= _HUGE:  # beyond float range, or infinite
        return _close_exact(a, b, tolerance)
    return abs(a - b) <= tolerance * scale


def number_similarity(a: float, b: float, tolerance: float) -> float:
    """1 within tolerance, else 1 - |a - b| / max(|a|, |b|), floored at 0."""
    if a == b:
        return 1.0
    if a != a or b != b:
        return 1.0 if a != a and b != b else 0.0
    scale = max(abs(a), abs(b))
    if scale >= _HUGE:
        return 1.0 if _close_exact(a, b, tolerance) else 0.0
    gap = abs(a - b)
    if gap <= tolerance * scale:
        return 1.0
    return 1.0 - min(1.0, gap / scale)


def canonical(value: Any) -> str:
    """A stable text form of any JSON value (for ordering and exact comparison)."""
    if isinstance(value, str):
        return _canonical_str(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # integers beyond 64 bits, non-string keys: the slow, total path
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)


@lru_cache(maxsize=1 << 16)
def _canonical_str(value: str) -> str:
    return orjson.dumps(value).decode()


def label_key(value: Any) -> tuple[str, str]:
    """What makes two labels (or item keys) the same label."""
    if isinstance(value, str):
        return ("s", normalize_text(value))
    if is_number(value) and value == value and not _is_huge(value) and float(value).is_integer():
        return ("n", str(int(value)))
    return ("j", canonical(value))


def label_text(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)


def _is_huge(value: float) -> bool:
    return abs(value) >= _HUGE


def _close_exact(a: float, b: float, tolerance: float) -> bool:
    if _is_infinite(a) or _is_infinite(b):
        return False
    fa, fb = Fraction(a), Fraction(b)
    return abs(fa - fb) <= Fraction(tolerance) * max(abs(fa), abs(fb))


def _is_infinite(value: float) -> bool:
    return isinstance(value, float) and math.isinf(value)
