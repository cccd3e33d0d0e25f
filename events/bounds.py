"""Bounds of the event contract: every value the fold and the read model will see.

A valid event must always fold and store, on every backend, so the contract refuses
what a backend or the consensus engine cannot take. Free-form JSON (pass outputs,
block configs, handle inputs, usage) is walked once, iteratively (no recursion, so a
hostile depth cannot raise `RecursionError`), and stops at the first problem.

The limits, and why:
- depth 32, lists of 2,000 items, 50,000 values, 512 KiB encoded: a real invoice
  extraction (a few hundred line items of ~10 fields) uses a tenth of that, and the
  consensus engine's work per document is bounded by these numbers; a whole event
  stays under Kafka's default 1 MB message size.
- integers with |n| < 2**63 (what orjson, PostgreSQL and SQLite store exactly);
  floats finite (NaN and Infinity have no JSON form: they were stored as null).
- object keys: at most 256 characters, no control characters (PostgreSQL text cannot
  hold NUL, and "a\\x00" would meet "a\\ufffd" in a target's primary key); no string
  anywhere may hold a lone surrogate (it has no UTF-8 form).
- a key's target path (keys joined by ".", list items as "*") at most 768 UTF-8
  bytes: with a run id (1,024 bytes) and a document id (768 bytes) it fits one
  PostgreSQL b-tree entry (2,704 bytes).
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

import orjson

MAX_JSON_DEPTH = 32
"""Containers nested in a free-form value (the value itself is depth 1)."""
MAX_JSON_LIST_LENGTH = 2_000
"""Items in any one list (e.g. an invoice's line items)."""
MAX_JSON_NODES = 50_000
"""Values in one free-form value, containers and scalars alike."""
MAX_JSON_BYTES = 512 * 1024
"""One free-form value, encoded as JSON."""
MAX_KEY_CHARS = 256
"""An object key."""
MAX_PATH_BYTES = 768
"""A target path (`line_items.*.unit_price`), UTF-8."""
MAX_INT = 2**63 - 1
"""|n| <= MAX_INT for every integer."""
MAX_TEXT_CHARS = 16_384
"""Free text (names, file names, error messages, reasons)."""
MAX_ID_CHARS, MAX_ID_BYTES = 256, 768
"""Ids and names from outside (org, workflow, block, document, producer)."""
MAX_AGGREGATE_ID_CHARS, MAX_AGGREGATE_ID_BYTES = 1024, 1024
MAX_PAYLOAD_BYTES = 960 * 1024
"""One event's payload as JSON: with the envelope it stays under Kafka's default
`message.max.bytes` (1 MiB), whatever mix of bounded fields it carries."""
MAX_DOCUMENTS = 5_000
"""Documents frozen into one experiment or run."""
MAX_DOCUMENTS_BYTES = 768 * 1024
"""A document list, encoded as JSON (it travels in one event)."""
MAX_PASS_INDEX = 6
"""n_consensus is at most 7."""
MAX_ATTEMPT = 1_000
MIN_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_OCCURRED_AT = datetime(2100, 1, 1, tzinfo=timezone.utc)
"""`occurred_at` lies in [MIN, MAX): far from the limits of datetime and of every store."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def text_problem(value: str) -> str | None:
    if not value.isascii() and _SURROGATE.search(value):
        return "contains a lone surrogate (not encodable as UTF-8)"
    return None


def checked_text(value: str) -> str:
    """Pydantic after-validator for any string from outside."""
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return "object keys must be strings"
    if len(key) > MAX_KEY_CHARS:
        return f"object key longer than {MAX_KEY_CHARS} characters"
    if _CONTROL.search(key):
        return f"object key {key!r} contains a control character"
    return text_problem(key)


def checked_json(value: Any) -> Any:
    """Pydantic after-validator for a free-form JSON value (see the module docstring)."""
    problem = json_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def json_problem(value: Any) -> str | None:
    """None when `value` is within every bound, else the first problem and where."""
    problem = None if _within(value) else _walk(value)
    if problem is None and len(orjson.dumps(value)) > MAX_JSON_BYTES:
        problem = f"larger than {MAX_JSON_BYTES} bytes as JSON"
    return problem


_GOOD_KEYS: dict[str, int] = {}  # object keys seen within bounds -> their UTF-8 length
_GOOD_KEYS_MAX = 4096  # keys repeat across events (field names): kept while they fit


def _within(root: Any) -> bool:
    """True when `root` is within every bound: the checks of `_walk`, without the paths
    a message needs (no link per value), and keys already seen good (in any earlier
    value) looked up instead of checked. On False, `_walk` finds the first problem and
    says where. The decode's hot path: it runs once per value of every event."""
    if type(root) is not dict and type(root) is not list:
        return _scalar_problem(root) is None
    values, chars, good, isfinite = 1, 0, _GOOD_KEYS, math.isfinite
    stack: list[tuple[Any, int, int]] = [(root, 1, 0)]
    while stack:
        node, depth, path_bytes = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        values += len(node)
        if values > MAX_JSON_NODES:
            return False
        if type(node) is dict:
            base = path_bytes + (depth > 1)
            items = []
            for key, child in node.items():
                size = good.get(key)
                if size is None:
                    if key_problem(key):
                        return False
                    size = len(key) if key.isascii() else len(key.encode("utf-8"))
                    if type(key) is str and len(good) < _GOOD_KEYS_MAX:
                        good[key] = size
                if base + size > MAX_PATH_BYTES:
                    return False
                items.append((child, base + size))
        else:
            if len(node) > MAX_JSON_LIST_LENGTH:
                return False
            item_bytes = path_bytes + 1 + (depth > 1)
            items = [(child, item_bytes) for child in node]
        for child, child_bytes in items:
            kind = type(child)
            if kind is str:
                chars += len(child)
                if chars > MAX_JSON_BYTES or (not child.isascii() and text_problem(child)):
                    return False
            elif kind is int:
                if not -MAX_INT <= child <= MAX_INT:
                    return False
            elif kind is float:
                if not isfinite(child):
                    return False
            elif kind is dict or kind is list:
                stack.append((child, depth + 1, child_bytes))
            elif _scalar_problem(child):
                return False
    return True


SHORT_KEY_BYTES = 23
"""32 levels of keys of at most 23 bytes, each with its separator, stay within MAX_PATH_BYTES."""
_SHORT_KEYS: set[str] = set()  # keys seen clean and short (field names: they repeat)


def parsed_within(root: Any) -> bool:
    """The compiled decode's walk (events/compiled.py): True when `root`, a value as a JSON
    parser read it from a record the compiled decode vouches for (so its strings, numbers
    and sizes are within bounds already), is within the bounds of its containers: depth,
    list lengths, keys clean and short enough that no target path can pass its bound. Only
    containers are visited, and a dict whose keys were all seen before costs one set
    comparison. False also when it cannot tell (a longer key): `json_problem` then decides."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    short = _SHORT_KEYS
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            if not node.keys() <= short:
                for key in node:
                    if key not in short and not _short_key(key):
                        return False
            children = node.values()
        elif kind is list:
            if len(node) > MAX_JSON_LIST_LENGTH:
                return False
            children = node
        else:
            continue
        if _CONTAINERS.isdisjoint(map(type, children)):  # scalars only (in C): the usual leaf
            continue
        if depth == MAX_JSON_DEPTH:
            return False
        depth += 1
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth))
    return True


_CONTAINERS = frozenset((dict, list))


def _short_key(key: Any) -> bool:
    if type(key) is not str or len(key) > SHORT_KEY_BYTES or _CONTROL.search(key):
        return False
    if not key.isascii() and (len(key.encode("utf-8", "surrogatepass")) > SHORT_KEY_BYTES or text_problem(key)):
        return False
    if len(_SHORT_KEYS) < _GOOD_KEYS_MAX:
        _SHORT_KEYS.add(key)
    return True


def _walk(root: Any) -> str | None:
    """One pass with an explicit stack of containers; each child is checked where it sits
    (inline: this loop runs once per value of every event decoded). A container's path
    is a link (parent link, key), spelled out only for a message; keys repeated across
    list items (the usual shape) are checked once."""
    if type(root) not in (dict, list):
        problem = _scalar_problem(root)
        return _at(problem, None) if problem else None
    values, chars = 1, 0
    good_keys: dict[str, int] = {}  # key -> its UTF-8 length
    stack: list[tuple[Any, int, int, tuple | None]] = [(root, 1, 0, None)]
    while stack:
        node, depth, path_bytes, link = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return _at(f"nested deeper than {MAX_JSON_DEPTH}", link)
        values += len(node)
        if values > MAX_JSON_NODES:
            return _at(f"more than {MAX_JSON_NODES} values", link)
        if type(node) is dict:
            children = []
            for key, child in node.items():
                size = good_keys.get(key) if type(key) is str else None
                if size is None:
                    problem = key_problem(key)
                    if problem:
                        return _at(problem, link)
                    size = good_keys[key] = len(key) if key.isascii() else len(key.encode("utf-8"))
                child_bytes = path_bytes + size + (link is not None)
                if child_bytes > MAX_PATH_BYTES:
                    return _at(f"target path longer than {MAX_PATH_BYTES} bytes", (link, key))
                children.append((child, (link, key), child_bytes))
        else:
            if len(node) > MAX_JSON_LIST_LENGTH:
                return _at(f"list longer than {MAX_JSON_LIST_LENGTH} items", link)
            item_link, item_bytes = (link, "*"), path_bytes + 1 + (link is not None)
            children = [(child, item_link, item_bytes) for child in node]
        for child, child_link, child_bytes in children:
            kind = type(child)
            if kind is str:
                chars += len(child)
                problem = None if child.isascii() else text_problem(child)
                if chars > MAX_JSON_BYTES:
                    problem = f"larger than {MAX_JSON_BYTES} bytes as JSON"
            elif kind is int:
                problem = None if -MAX_INT <= child <= MAX_INT else f"integer outside ±(2**63 - 1): {_short_int(child)}"
            elif kind is float:
                problem = None if math.isfinite(child) else f"{child} is not a JSON number"
            elif kind is dict or kind is list:
                stack.append((child, depth + 1, child_bytes, child_link))
                continue
            else:
                problem = _scalar_problem(child)
            if problem:
                return _at(problem, child_link)
    return None


def _scalar_problem(value: Any) -> str | None:
    """The slow path: any scalar, subclasses of the JSON types included (a str enum)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int):
        return None if -MAX_INT <= value <= MAX_INT else f"integer outside ±(2**63 - 1): {_short_int(value)}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} subclasses are not JSON values"
    return f"{type(value).__name__} is not a JSON value"


def _at(problem: str, link: tuple | None) -> str:
    keys = []
    while link is not None:
        link, key = link
        keys.append(str(key))
    path = ".".join(reversed(keys))
    where = path if len(path) <= 80 else path[:77] + "..."
    return f"{problem} (at {where or 'the top'})"


def _short_int(n: int) -> str:
    text = str(n) if n.bit_length() < 1000 else f"{n.bit_length()}-bit integer"
    return text if len(text) <= 40 else text[:37] + "..."


def checked_occurred_at(value: datetime) -> datetime:
    """Aware, within [MIN_OCCURRED_AT, MAX_OCCURRED_AT), returned in UTC. Compared before
    converting, so a far date with an offset is a validation error, not an OverflowError."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("occurred_at must carry a timezone")
    if not MIN_OCCURRED_AT <= value < MAX_OCCURRED_AT:
        raise ValueError(f"occurred_at must lie in [{MIN_OCCURRED_AT.isoformat()}, {MAX_OCCURRED_AT.isoformat()})")
    return value.astimezone(timezone.utc)
