"""W3C trace context for events: which `traceparent` an event is stamped with, and the
OpenTelemetry glue (the `otel` extra; without it everything here still works on plain strings).

The producer stamps an event with, first found: the `trace=` it was given; the
traceparent set by `use_trace(...)` (a context variable); the current OpenTelemetry span's
context, written by the W3C propagator, when opentelemetry-api is installed and a span is
current. Nothing of this changes what an event means: the fold never reads the trace.
"""
from __future__ import annotations

import contextlib
import contextvars
import re
import secrets
from typing import Any, Iterable, Iterator

from .envelope import is_traceparent

try:  # the `otel` extra
    from opentelemetry import trace as otel
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised by a subprocess test without the package
    otel = None

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("runledger_trace", default=None)
_HEADER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def otel_available() -> bool:
    return otel is not None


@contextlib.contextmanager
def use_trace(traceparent: str | None) -> Iterator[None]:
    """Events produced inside carry `traceparent` (None: no explicit trace)."""
    if traceparent is not None and not is_traceparent(traceparent):
        raise ValueError(f"not a W3C traceparent: {traceparent[:80]!r}")
    token = _current.set(traceparent)
    try:
        yield
    finally:
        _current.reset(token)


def current_traceparent() -> str | None:
    """The trace an event produced now belongs to, or None."""
    return _current.get() or _from_current_span()


def parse_header(value: str | None) -> str | None:
    """A `traceparent` header as W3C's receiving rules read it, as a version-00 value; None
    when absent or malformed (W3C: a receiver that cannot parse it ignores it, it does not
    fail the request). A higher version keeps its first four fields, as the spec asks."""
    value = (value or "").strip(" \t")
    found = _HEADER.match(value)
    if not found or found.group(1) == "ff":
        return None
    version, trace_id, span_id, flags = found.groups()
    if version == "00" and len(value) != 55 or version != "00" and len(value) > 55 and value[55] != "-":
        return None
    candidate = f"00-{trace_id}-{span_id}-{flags}"
    return candidate if is_traceparent(candidate) else None


def new_traceparent(parent: str | None = None) -> str:
    """A new span id in `parent`'s trace (its flags kept), or a new trace, not sampled
    (flags 00: no tracer recorded it)."""
    span_id = secrets.token_hex(8)
    if parent:
        return f"00-{parent[3:35]}-{span_id}-{parent[53:55]}"
    return f"00-{secrets.token_hex(16)}-{span_id}-00"


@contextlib.contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[str]:
    """A span of work (a worker's pass) whose events share one traceparent, which is
    yielded. With OpenTelemetry and a recording tracer, a real span, child of the current
    context; otherwise a new span id in the current trace, or a new trace."""
    parent = current_traceparent()
    if otel is None:
        with use_trace(new_traceparent(parent)):
            yield _current.get()
        return
    tracer = otel.get_tracer("runledger")
    explicit = _context_of(_current.get())  # else the current OpenTelemetry context is the parent, as it is
    with tracer.start_as_current_span(name, context=explicit, attributes=attributes) as current:
        with use_trace(_from_current_span() if current.is_recording() else new_traceparent(parent)):
            yield _current.get()


def record_span(name: str, start_ns: int, end_ns: int, links: Iterable[str], attributes: dict[str, Any]) -> None:
    """A finished span (the projector's batch), a trace of its own, linked to each
    traceparent in `links`; nothing without OpenTelemetry or when no tracer records it."""
    if otel is None:
        return
    recorded = otel.get_tracer("runledger").start_span(name, context=Context(), start_time=start_ns,
                                                       attributes=attributes)
    if recorded.is_recording():
        for traceparent in links:
            recorded.add_link(_span_context(traceparent))
    recorded.end(end_time=end_ns)


def _from_current_span() -> str | None:
    if otel is None or not otel.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return parse_header(carrier.get("traceparent"))


def _context_of(traceparent: str | None):
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None


def _span_context(traceparent: str):
    return otel.SpanContext(trace_id=int(traceparent[3:35], 16), span_id=int(traceparent[36:52], 16),
                            is_remote=True, trace_flags=otel.TraceFlags(int(traceparent[53:55], 16)))
