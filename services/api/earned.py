"""Once a command's events are on the log its answer is earned, whatever fails after.

Every write request under `/v1/` gets a `Journal` (in its state, reached as
`Ctx.journal`): the ids its command makes and the events it appended.

- A command takes its new ids from the journal (`new_id`, `event_id`). With an
  `Idempotency-Key` they derive from the seed stored with the key's claim
  (services/api/idempotency.py), so a retry of the same request makes the same run id and
  the same events: what it re-appends, the fold refuses as a duplicate (a second
  `RunCreated` of a run, a cancel of a cancelled run). Without one they are random.
- A command appends through `Ctx.record`, which notes the events, their positions and
  the states the command read before appending (`before`) here, then waits for the
  projection.

`Earned` is the innermost middleware. When the route raised, or answered a 5xx (the
projection lag's 503, a transient read-model fault while waiting or reading the result,
anything at all), after its command appended, it answers instead **202** with
`x-runledger-visible: false`, the position token and the resource folded from the
command's own events onto the states it read before (services/api/accepted.py). That
is the answer the idempotency layer around it stores: a retry replays it, never runs
the command again. A fault *before* the append is answered as it was (a 503 invites the
retry, which runs with the same ids).
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from events.envelope import NAMESPACE, Event
from events.log import Position

from .. import fingerprints as fp
from .accepted import accepted
from .guard import WRITE_METHODS
from .idempotency import SEED

log = logging.getLogger("runledger.api")


@dataclass
class Journal:
    seed: str | None = None
    appended: list[Event] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # aggregate id -> its state as the command read it
    _taken: int = 0

    def new_id(self, prefix: str) -> str:
        """`<prefix>_<24 hex>`, as `fingerprints.new_id` makes them."""
        return fp.new_id(prefix) if self.seed is None else f"{prefix}_{self._next(prefix)[:24]}"

    def event_id(self) -> uuid.UUID | None:
        """For an event without a natural identity; None (a random id) without a seed."""
        return None if self.seed is None else uuid.uuid5(NAMESPACE, f"idempotent/{self._next('event')}")

    def note(self, events: list[Event], positions: list[Position], before: dict[str, Any]) -> None:
        for event in events:
            if event.aggregate_id not in self.before and event.aggregate_id in before:
                self.before[event.aggregate_id] = before[event.aggregate_id]
        self.appended += events
        self.positions += positions

    def _next(self, purpose: str) -> str:
        self._taken += 1
        return hashlib.sha256(f"{self.seed}/{purpose}/{self._taken}".encode()).hexdigest()


def journal_of(state) -> Journal:
    """The request's journal (a console form or a test without the middleware gets its own)."""
    found = getattr(state, "journal", None)
    if found is None:
        found = Journal()
        state.journal = found
    return found


class Earned:
    def __init__(self, app: ASGIApp, runtime):
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        journal = state["journal"] = Journal(state.get(SEED))
        started = replaced = False

        async def watched(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start" and message["status"] >= 500 and journal.appended:
                replaced = True
                log.warning("a command's events are on the log (%s), then it answered %s: answering 202",
                            _tokens(journal), message["status"])
            if replaced:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started or not journal.appended:
                raise
            log.warning("a command's events are on the log (%s), then it failed: answering 202", _tokens(journal),
                        exc_info=True)
            replaced = True
        if replaced:
            await (await accepted(self.runtime, journal))(scope, receive, send)


def _tokens(journal: Journal) -> str:
    return ",".join(p.token() for p in journal.positions)
