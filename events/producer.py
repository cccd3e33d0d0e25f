"""The producer SDK: workers emit run events straight to Kafka, or over HTTP.

    async with Producer.over_kafka("kafka:9092", org_id="acme") as producer:
        await producer.pass_completed(run_id, document_id, 0, {"category": "invoice"})

Every event is validated here (`InvalidEvent`, nothing sent) and gets its id from
`codec.build`: a pass's id is derived from (run, document, pass, type), so resending
it after an error can never count twice. Sends are retried with exponential backoff
on broker, connection and HTTP 5xx errors; HTTP 4xx raise `Rejected` with the
server's detail. See docs/producer.md.

Trace context: each event carries a W3C traceparent when one is at hand (`trace=`,
`events.trace.use_trace(...)`, or the current OpenTelemetry span with the `otel` extra);
over HTTP it travels as the `traceparent` header (events.trace).
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, Protocol, Sequence

from .catalogue import RUN_EVENT_TYPES
from .codec import build, encode
from .envelope import Event, known_types
from .log import EventLog, LogUnavailable, Message, Position
from .trace import current_traceparent

log = logging.getLogger("runledger.producer")

HTTP_ORG = "via-http"  # placeholder for local validation; the server stamps the key's org


class InvalidEvent(ValueError):
    """The event does not match the catalogue; nothing was sent."""


class ProducerError(RuntimeError):
    """Sending failed for good (retries exhausted, or an error that retrying cannot fix)."""


class Rejected(ProducerError):
    """The server answered 4xx. `detail` is its error body (`{"code", "message", "details"}`,
    or FastAPI's list for 422 validation errors)."""

    def __init__(self, status: int, detail: Any):
        message = detail.get("message") if isinstance(detail, dict) else detail
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.detail = status, detail


class _Transport(Protocol):
    max_batch: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, events: Sequence[Event]) -> list[Position]: ...

    def retryable(self, exc: BaseException) -> bool: ...


class Producer:
    backoff_base = 0.2  # seconds; doubled per retry
    backoff_cap = 5.0

    def __init__(self, transport: _Transport, *, org_id: str, producer: str = "sdk", retries: int = 5):
        self._transport = transport
        self.org_id = org_id
        self.producer = producer
        self.retries = retries
        self._started = False

    @classmethod
    def over_http(cls, base_url: str, api_key: str, *, producer: str = "sdk", max_batch: int = 100,
                  retries: int = 5) -> Producer:
        """Through `POST /v1/ledger/events`; the organisation is the API key's."""
        return cls(_HttpTransport(base_url, api_key, max_batch), org_id=HTTP_ORG, producer=producer,
                   retries=retries)

    @classmethod
    def over_kafka(cls, bootstrap: str, *, org_id: str, topic: str = "runledger.events",
                   partitions: int | None = None, producer: str = "sdk", retries: int = 5) -> Producer:
        """Straight to the topic (a trusted producer names its organisation). `partitions`
        only matters if the topic does not exist yet; an existing topic's count is used."""
        from .kafka_log import KafkaEventLog

        log_ = KafkaEventLog(bootstrap, topic=topic, partitions=partitions or 6)
        return cls(_LogTransport(log_, owned=True), org_id=org_id, producer=producer, retries=retries)

    @classmethod
    def over_log(cls, log_: EventLog, *, org_id: str, producer: str = "sdk", retries: int = 5,
                 max_batch: int = 500) -> Producer:
        """Onto any started EventLog (the embedded one, tests); the caller owns the log."""
        return cls(_LogTransport(log_, owned=False, max_batch=max_batch), org_id=org_id,
                   producer=producer, retries=retries)

    async def start(self) -> None:
        if not self._started:
            await self._transport.start()
            self._started = True

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self._transport.close()

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- events --------------------------------------------------------------------

    async def emit(self, event_type: str, run_id: str, payload: dict, *, event_id=None,
                   occurred_at=None, trace: str | None = None) -> Position:
        event = self.build(event_type, run_id, payload, event_id=event_id, occurred_at=occurred_at, trace=trace)
        [position] = await self.send([event])
        return position

    async def emit_many(self, events: list[tuple[str, str, dict]]) -> list[Position]:
        """Validate all, then send in batches of `max_batch`; positions in the given order."""
        built = []
        for index, (event_type, run_id, payload) in enumerate(events):
            try:
                built.append(self.build(event_type, run_id, payload))
            except InvalidEvent as exc:
                raise InvalidEvent(f"events[{index}]: {exc}") from None
        return await self.send(built)

    async def run_queued(self, run_id: str, *, trace: str | None = None) -> Position:
        """Take a pending run (its id is deterministic: taking it twice counts once)."""
        return await self.emit("RunQueued", run_id, {}, trace=trace)

    async def run_started(self, run_id: str, worker: str | None = None, *, trace: str | None = None) -> Position:
        return await self.emit("RunStarted", run_id, {"worker": worker}, trace=trace)

    async def pass_completed(self, run_id: str, document_id: str, pass_index: int, output, *,
                             duration_ms: int | None = None, usage: dict | None = None,
                             attempt: int = 1, trace: str | None = None) -> Position:
        return await self.emit("DocumentPassCompleted", run_id, {
            "document_id": document_id, "pass_index": pass_index, "output": output,
            "duration_ms": duration_ms, "usage": usage, "attempt": attempt,
        }, trace=trace)

    async def pass_failed(self, run_id: str, document_id: str, pass_index: int, *, attempt: int,
                          message: str, code: str | None = None, final: bool = True,
                          trace: str | None = None) -> Position:
        return await self.emit("DocumentPassFailed", run_id, {
            "document_id": document_id, "pass_index": pass_index, "attempt": attempt,
            "error": {"message": message, "code": code}, "final": final,
        }, trace=trace)

    async def run_failed(self, run_id: str, message: str, code: str | None = None, *,
                         trace: str | None = None) -> Position:
        return await self.emit("RunFailed", run_id, {"error": {"message": message, "code": code}}, trace=trace)

    # -- building and sending ----------------------------------------------------

    def build(self, event_type: str, run_id: str, payload: dict, *, event_id=None, occurred_at=None,
              trace: str | None = None) -> Event:
        """The validated event as it will be sent (raises InvalidEvent). `trace` defaults
        to the current one (events.trace.current_traceparent)."""
        if event_type not in RUN_EVENT_TYPES:
            kind = "a known event type, but not a run event" if event_type in known_types() else "an unknown event type"
            raise InvalidEvent(f"{event_type!r} is {kind}; run events: {', '.join(sorted(RUN_EVENT_TYPES))}")
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidEvent(f"{event_type}: run_id must be a non-empty string")
        if not isinstance(payload, dict):
            raise InvalidEvent(f"{event_type} for {run_id}: payload must be a dict")
        try:
            return build(event_type, run_id, payload, org_id=self.org_id, producer=self.producer,
                         occurred_at=occurred_at, event_id=event_id, trace=trace or current_traceparent())
        except ValueError as exc:
            raise InvalidEvent(f"{event_type} for {run_id}: {exc}") from None

    async def send(self, events: Sequence[Event]) -> list[Position]:
        if not self._started:
            raise RuntimeError("Producer is not started: call start() or use `async with`")
        positions: list[Position] = []
        size = self._transport.max_batch
        for i in range(0, len(events), size):
            chunk = events[i:i + size]
            positions += await self._with_retries(lambda: self._transport.send(chunk))
        return positions

    async def _with_retries(self, attempt: Callable[[], Awaitable[list[Position]]]) -> list[Position]:
        for retry in range(self.retries + 1):
            try:
                return await attempt()
            except Exception as exc:
                if not self._transport.retryable(exc):
                    raise
                if retry == self.retries:
                    raise ProducerError(f"giving up after {retry + 1} attempts: {exc!r}") from exc
                delay = min(self.backoff_cap, self.backoff_base * 2 ** retry) * random.uniform(0.75, 1.0)
                log.warning("send failed (%r); retry %s/%s in %.1fs", exc, retry + 1, self.retries, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


class _LogTransport:
    def __init__(self, log_: EventLog, owned: bool, max_batch: int = 500):
        self.log, self.owned, self.max_batch = log_, owned, max_batch

    async def start(self) -> None:
        if self.owned:
            await self.log.start()

    async def close(self) -> None:
        if self.owned:
            await self.log.close()

    async def send(self, events: Sequence[Event]) -> list[Position]:
        return await self.log.append([Message(e.aggregate_id, encode(e)) for e in events])

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, (ConnectionError, TimeoutError, LogUnavailable)):
            return True
        try:
            from aiokafka import errors
        except ImportError:  # pragma: no cover
            return False
        transient = (errors.KafkaConnectionError, errors.KafkaTimeoutError, errors.RequestTimedOutError,
                     errors.NodeNotReadyError, errors.NotLeaderForPartitionError)
        return isinstance(exc, errors.KafkaError) and (exc.retriable or isinstance(exc, transient))


class _HttpTransport:
    def __init__(self, base_url: str, api_key: str, max_batch: int):
        if not 1 <= max_batch <= 1000:
            raise ValueError("max_batch must be within 1..1000 (the server's limit)")
        self.base_url, self.api_key, self.max_batch = base_url.rstrip("/"), api_key, max_batch
        self._client = None

    async def start(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(base_url=self.base_url, headers={"Api-Key": self.api_key},
                                         timeout=httpx.Timeout(30.0, connect=5.0))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, events: Sequence[Event]) -> list[Position]:
        """One request. A trace shared by every event travels as the `traceparent` header
        (the server stamps it on them); otherwise each traced event names its own."""
        shared = {e.trace for e in events}
        header = shared.pop() if len(shared) == 1 else None
        body = {"events": [_wire(e, with_trace=header is None) for e in events]}
        headers = {"traceparent": header} if header else {}
        response = await self._client.post("/v1/ledger/events", json=body, headers=headers)
        if response.status_code >= 500:
            raise _ServerError(response.status_code, response.text[:500])
        if response.status_code >= 400:
            raise Rejected(response.status_code, _detail(response))
        return [Position.parse(token) for token in response.json()["positions"]]

    def retryable(self, exc: BaseException) -> bool:
        import httpx

        return isinstance(exc, (_ServerError, httpx.TransportError))


class _ServerError(ProducerError):
    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


def _wire(event: Event, with_trace: bool) -> dict[str, Any]:
    wire = {"type": event.type, "run_id": event.aggregate_id, "payload": event.payload.model_dump(mode="json"),
            "event_id": str(event.event_id), "occurred_at": event.occurred_at.isoformat()}
    if with_trace and event.trace:
        wire["trace"] = event.trace
    return wire


def _detail(response) -> Any:
    try:
        return response.json().get("detail", response.text)
    except ValueError:
        return response.text
