"""Rendered answers kept in this process, forgotten by tag (services/api/read_cache.py).

Pure bookkeeping, no I/O: bounded in bytes (least recently used first out) and in age
(`ttl`: the bound for a change no announcement tells of), and safe against the race of a
slow miss: `ticket()` is taken before the route reads the store, and `put` refuses an
answer when anything it is tagged with was forgotten after its ticket (the answer may
predate that change). One event loop per process: no locks.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Iterable

Tag = tuple[str, str]
ENTRY_OVERHEAD = 256  # bytes counted per answer beside its body and headers
MAX_TRACKED_TAGS = 100_000  # forgotten tags remembered for tickets in flight; beyond, all are refused


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    tags: frozenset[Tag]
    stored_at: float
    size: int


class CachedAnswers:
    def __init__(self, max_bytes: int, ttl: float, clock=time.monotonic):
        self.max_bytes, self.ttl, self.clock = max_bytes, ttl, clock
        self.bytes = 0
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        self._tagged: dict[Tag, set[Hashable]] = {}
        self._serial = 0  # moves at every forget
        self._forgotten: dict[Tag, int] = {}  # tag -> serial when last forgotten
        self._refused_before = 0  # answers with an older ticket are refused whatever their tags

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Hashable) -> Answer | None:
        answer = self._answers.get(key)
        if answer is None:
            return None
        if self.clock() - answer.stored_at > self.ttl:
            self._drop(key)
            return None
        self._answers.move_to_end(key)
        return answer

    def ticket(self) -> int:
        """Take before reading the store for an answer to `put` later."""
        return self._serial

    def put(self, key: Hashable, ticket: int, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes,
            tags: Iterable[Tag]) -> bool:
        """Keep the answer unless something it is tagged with was forgotten since `ticket`
        (then it may be older than that change) or it is larger than an eighth of the budget."""
        tags = frozenset(tags)
        if ticket < self._refused_before or any(self._forgotten.get(tag, -1) > ticket for tag in tags):
            return False
        headers = tuple(headers)
        size = len(body) + sum(len(k) + len(v) for k, v in headers) + ENTRY_OVERHEAD
        if size > self.max_bytes // 8:
            return False
        self._drop(key)
        self._answers[key] = Answer(status, headers, body, tags, self.clock(), size)
        self.bytes += size
        for tag in tags:
            self._tagged.setdefault(tag, set()).add(key)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._answers)))
        return True

    def forget(self, tags: Iterable[Tag]) -> None:
        """Every answer tagged with any of `tags`; answers in flight with them are refused."""
        self._serial += 1
        for tag in tags:
            self._forgotten[tag] = self._serial
            for key in list(self._tagged.get(tag, ())):
                self._drop(key)
        if len(self._forgotten) > MAX_TRACKED_TAGS:
            self._forgotten.clear()
            self._refused_before = self._serial

    def clear(self) -> None:
        """Everything, and every answer in flight."""
        self._serial += 1
        self._refused_before = self._serial
        self._answers.clear()
        self._tagged.clear()
        self._forgotten.clear()
        self.bytes = 0

    def _drop(self, key: Hashable) -> None:
        answer = self._answers.pop(key, None)
        if answer is None:
            return
        self.bytes -= answer.size
        for tag in answer.tags:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]
