"""Which consensus label a classifier or split target stands for, in a form an index holds.

`by_target` answers a label (`invoice`) with the targets whose consensus value is that
label (`label_text`, as the consensus engine names labels). A label may be any JSON value
a pass wrote (a classifier's category, a split's name), so the column holds its sha256,
never the text: a b-tree entry stays small whatever the label. Extract and for_each
targets are paths, never labels: their column is NULL.
"""
from __future__ import annotations

import hashlib
from typing import Any

from projections.domain.aggregate import LABEL_BLOCKS
from projections.domain.consensus.normalize import label_text


def label_hash(block_type: str, value: Any) -> str | None:
    """`document_targets.label_hash` of a target with this consensus `value` in a run of `block_type`."""
    if block_type not in LABEL_BLOCKS or value is None:
        return None
    return digest(label_text(value))


def digest(label: str) -> str:
    return hashlib.sha256(label.encode("utf-8", "surrogatepass")).hexdigest()
