"""How votes are compared: text normalization, number closeness, canonical forms."""
from __future__ import annotations

import enum
import json
import math
import re
import unicodedata
from fractions import Fraction
from functools import lru_cache
from typing import Any

import orjson

from .limits import CACHED_TEXT_CHARS


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent.ABSENT
"""A pass that said nothing at a path (failed, key missing, row missing); not JSON null."""

_HUGE = 2.0**1000


def normalize_text(text: str) -> str:
    """Casefold, strip accents, turn each run of punctuation/whitespace into one space.

    ASCII text takes a table-free path (the same result, fixed for every Python); other
    text depends on the Unicode tables of the running Python (`unicodedata.unidata_version`,
    recorded in the engine identity): casefold, NFKD and the general categories.
    """
    if len(text) <= CACHED_TEXT_CHARS:
        return _normalize_cached(text)
    return _normalize(text)


@lru_cache(maxsize=1 << 16)
def _normalize_cached(text: str) -> str:
    return _normalize(text)


_ASCII_GAPS = re.compile(r"""[\x00-\x1f\x7f !"#%&'()*,\-./:;?@\[\\\]_{}]+""")
"""ASCII punctuation (P*), space (Zs) and controls (Cc): stable in every Unicode version."""


def _normalize(text: str) -> str:
    if text.isascii():
        return _ASCII_GAPS.sub(" ", text.lower()).strip(" ")
    return _normalize_unicode(text)


def _normalize_unicode(text: str) -> str:
    """Combining marks (Mn) dropped, punctuation/separators/controls (P*, Z*, Cc) turned
    into spaces, in C through str.translate; then runs of spaces become one."""
    spaced = unicodedata.normalize("NFKD", text.casefold()).translate(_CHARACTER_CLASSES)
    return _SPACES.sub(" ", spaced).strip(" ")


class _CharacterClasses(dict):
    """code point -> None (drop), " " (a gap) or itself; filled as characters are met,
    up to a bound (beyond it, looked up without being kept)."""

    def __missing__(self, code: int) -> str | None:
        category = unicodedata.category(chr(code))
        if category == "Mn":
            result = None
        elif category[0] in "PZ" or category == "Cc":
            result = " "
        else:
            result = chr(code)
        if len(self) < 1 << 16:
            self[code] = result
        return result


_CHARACTER_CLASSES = _CharacterClasses()
_SPACES = re.compile(" {2,}")


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
    """A stable text form of any JSON value (for ordering and exact comparison); never raises."""
    if isinstance(value, str):
        return _canonical_str(value) if len(value) <= CACHED_TEXT_CHARS else _str_form(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # beyond 64-bit integers, non-string keys, lone surrogates, deep: the slow path
        return _slow_form(value)


@lru_cache(maxsize=1 << 16)
def _canonical_str(value: str) -> str:
    return _str_form(value)


def _str_form(value: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # a lone surrogate: no UTF-8 form
        return json.dumps(value, ensure_ascii=False)


def _slow_form(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):  # mixed key types, nesting beyond the C stack
        return _iterative_form(value)


def _iterative_form(root: Any) -> str:
    """Canonical-like JSON built without recursion (keys sorted by their own form)."""
    out: list[str] = []
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, _Raw):
            out.append(node.text)
        elif isinstance(node, dict):
            items = sorted(((_scalar_form(k) if not isinstance(k, str) else json.dumps(k, ensure_ascii=False), v)
                            for k, v in node.items()), key=lambda kv: kv[0])
            stack.append(_Raw("}"))
            for i, (key, child) in enumerate(reversed(items)):
                stack.extend([child, _Raw(key + ":")] + ([_Raw(",")] if i < len(items) - 1 else []))
            stack.append(_Raw("{"))
        elif isinstance(node, (list, tuple)):
            stack.append(_Raw("]"))
            for i, child in enumerate(reversed(node)):
                stack.extend([child] + ([_Raw(",")] if i < len(node) - 1 else []))
            stack.append(_Raw("["))
        else:
            out.append(_scalar_form(node))
    return "".join(out)


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _scalar_form(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


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
