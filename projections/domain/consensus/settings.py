"""The few block-config keys the engine reads; every other key is ignored."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

DEFAULT_NUMERIC_TOLERANCE = 0.01
DEFAULT_LONG_TEXT_THRESHOLD = 40
MATCH_THRESHOLD = 0.5
"""List items less similar than this are never aligned into the same row."""


@dataclass(frozen=True, slots=True)
class Settings:
    numeric_tolerance: float = DEFAULT_NUMERIC_TOLERANCE
    long_text_threshold: int = DEFAULT_LONG_TEXT_THRESHOLD
    key_field: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Settings:
        problem = config_problem(config)
        if problem:
            raise ValueError(problem)
        config = config or {}
        return cls(
            numeric_tolerance=float(config.get("numeric_tolerance", DEFAULT_NUMERIC_TOLERANCE)),
            long_text_threshold=int(config.get("long_text_threshold", DEFAULT_LONG_TEXT_THRESHOLD)),
            key_field=config.get("key_field") or None,
        )


def config_problem(config: Mapping[str, Any] | None) -> str | None:
    """None when the engine can use `config`, else why not (check it when a block is defined)."""
    config = config or {}
    tolerance = config.get("numeric_tolerance", DEFAULT_NUMERIC_TOLERANCE)
    if not _is_real(tolerance) or not 0 <= tolerance < 1:
        return "numeric_tolerance must be a number in [0, 1)"
    threshold = config.get("long_text_threshold", DEFAULT_LONG_TEXT_THRESHOLD)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
        return "long_text_threshold must be a non-negative integer"
    key_field = config.get("key_field")
    if key_field is not None and not isinstance(key_field, str):
        return "key_field must be a string"
    return None


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
