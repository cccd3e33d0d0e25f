"""A built-in block for JSON documents that needs no model: it "reads" the document
back with seeded mistakes, so the passes of a run disagree in a reproducible way.

Each document gets a difficulty from its content (some are read cleanly, some are
hard), and each pass a random generator seeded by (document, pass_index): the same
run gives the same outputs, the same votes and the same score, every time.

    runledger worker --block services.worker.demo_block:demo_block
"""
from __future__ import annotations

import copy
import hashlib
import random
from typing import Any

import orjson

DIFFICULTIES = (0.0, 0.04, 0.1, 0.2)
"""Chance that a pass misreads any one value, by document."""
OCR_CONFUSIONS = {"0": "O", "O": "0", "1": "l", "l": "1", "5": "S", "S": "5", "8": "B", "B": "8", "e": "c"}


def demo_block(block_type: str, config: dict, handle_inputs: dict, pass_index: int) -> dict:
    document = _document(handle_inputs)
    noise = difficulty(handle_inputs) * float(config.get("noise", 1.0))
    reader = Reader(random.Random(seed(handle_inputs, pass_index)), noise)
    if block_type == "classifier":
        return {"category": reader.label(document, config)}
    if block_type == "split":
        return {"splits": reader.splits(document)}
    if block_type == "for_each":
        items = document.get(config.get("items_field", "line_items"), [])
        return {"items": reader.read(items if isinstance(items, list) else [])}
    read = reader.read(document)
    return read if isinstance(read, dict) else {"value": read}


def difficulty(handle_inputs: dict) -> float:
    return DIFFICULTIES[_digest(_canonical(handle_inputs))[0] % len(DIFFICULTIES)]


class Reader:
    """Copies JSON, misreading each value with probability `noise`."""

    def __init__(self, rng: random.Random, noise: float):
        self.rng, self.noise = rng, noise

    def slip(self, scale: float = 1.0) -> bool:
        return self.rng.random() < self.noise * scale

    def read(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.read(v) for k, v in value.items() if not self.slip(0.25)}
        if isinstance(value, list):
            kept = [item for item in value if len(value) == 1 or not self.slip(0.5)]
            return [self.read(item) for item in kept]
        if not self.slip():
            return copy.deepcopy(value)
        if isinstance(value, bool):
            return not value
        if isinstance(value, (int, float)):
            return self._misread_number(value)
        if isinstance(value, str):
            return self._misread_text(value)
        return value

    def _misread_number(self, value: int | float) -> int | float:
        choice = self.rng.randrange(3)
        if choice == 0:
            return value * 10  # a lost decimal point
        if choice == 1 and isinstance(value, float):
            return round(value + self.rng.choice([-1, 1]) * self.rng.randint(1, 9) / 100 * max(1, abs(value)), 2)
        text = str(value)
        if len(text) > 1:
            i = self.rng.randrange(len(text) - 1)
            if text[i].isdigit() and text[i + 1].isdigit():
                swapped = text[:i] + text[i + 1] + text[i] + text[i + 2:]
                return type(value)(swapped)
        return value + 1

    def _misread_text(self, value: str) -> str:
        if not value:
            return value
        choice = self.rng.randrange(3)
        confusable = [i for i, c in enumerate(value) if c in OCR_CONFUSIONS]
        if choice == 0 and confusable:
            i = self.rng.choice(confusable)
            return value[:i] + OCR_CONFUSIONS[value[i]] + value[i + 1:]
        if choice == 1 and len(value) > 3:
            i = self.rng.randrange(len(value))
            return value[:i] + value[i + 1:]
        words = value.split()
        return " ".join(words[:-1]) if len(words) > 1 else value.upper()

    def label(self, document: dict, config: dict) -> str:
        labels = list(config.get("labels") or ["invoice", "receipt", "purchase_order"])
        truth = str(document.get("document_type", labels[0]))
        others = [label for label in labels if label != truth]
        return self.rng.choice(others) if others and self.slip(2) else truth

    def splits(self, document: dict) -> list[dict]:
        pages = list(range(1, int(document.get("pages", 1)) + 1))
        if len(pages) > 1 and self.slip(2):
            return [{"name": "invoice", "pages": pages[:-1]}, {"name": "appendix", "pages": pages[-1:]}]
        return [{"name": "invoice", "pages": pages}]


def _document(handle_inputs: dict) -> dict:
    for handle in handle_inputs.values():
        if isinstance(handle, dict) and handle.get("type") == "json":
            data = handle.get("data")
            return data if isinstance(data, dict) else {"value": data}
    for handle in handle_inputs.values():
        if isinstance(handle, dict) and handle.get("type") == "file":
            return {"filename": handle.get("document", {}).get("filename")}
    return {}


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def seed(handle_inputs: dict, pass_index: int) -> int:
    """A number fixed by the document and the pass: same inputs, same reading."""
    return int.from_bytes(_digest(_canonical(handle_inputs) + b"/%d" % pass_index)[:8], "big")
