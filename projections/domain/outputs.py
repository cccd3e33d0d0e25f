"""Shape checks for pass outputs, per block type (DESIGN §6). Pure."""
from __future__ import annotations

from typing import Any


def output_problem(block_type: str, output: Any) -> str | None:
    """None when `output` has the shape `block_type` produces, else why not."""
    if not isinstance(output, dict):
        return f"{block_type} output must be a JSON object"
    check = _CHECKS.get(block_type)
    return check(output) if check else None


def _classifier(output: dict) -> str | None:
    if not isinstance(output.get("category"), str):
        return 'classifier output must be {"category": "<label>"}'
    return None


def _split(output: dict) -> str | None:
    splits = output.get("splits")
    if not isinstance(splits, list):
        return 'split output must be {"splits": [{"name": ..., "pages": [...]}]}'
    for item in splits:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return "each split needs a string name"
        pages = item.get("pages")
        if not isinstance(pages, list) or not all(_is_page(p) for p in pages):
            return "each split needs pages: a list of page numbers >= 1"
    return None


def _for_each(output: dict) -> str | None:
    items = output.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return 'for_each output must be {"items": [{...}, ...]}'
    return None


def _is_page(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


_CHECKS = {"classifier": _classifier, "split": _split, "for_each": _for_each}
