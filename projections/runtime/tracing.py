"""What a projector tells about each batch it applied: one log line listing the trace ids
of its events, and, with OpenTelemetry, a span linked to each event's trace context."""
from __future__ import annotations

import logging
import time

from events.trace import record_span
from projections.runtime.batch import Batch

log = logging.getLogger("runledger.projector.batch")
MAX_LOGGED_TRACES = 100  # a 500-event batch of traced passes would otherwise log 17 KB


def batch_applied(batch: Batch, projection: str, seconds: float) -> None:
    """Log the batch (INFO: services.logs turns it on in JSON mode) and record its span."""
    traced = batch.traces  # the distinct traceparents of its events, in log order (Batch.decode_all)
    first, last = batch.records[0], batch.records[-1]
    attributes = {"runledger.projection": projection, "runledger.partition": first.partition,
                  "runledger.first_offset": first.offset, "runledger.last_offset": last.offset,
                  "runledger.events": len(batch.records)}
    end_ns = time.time_ns()
    record_span("runledger.projector.batch", end_ns - int(seconds * 1e9), end_ns, traced, attributes)
    if log.isEnabledFor(logging.INFO):
        trace_ids = list(dict.fromkeys(t[3:35] for t in traced))
        log.info("applied %d events of partition %d, offsets %d..%d", len(batch.records), first.partition,
                 first.offset, last.offset,
                 extra={"fields": {"projection": projection, "partition": first.partition,
                                   "first_offset": first.offset, "last_offset": last.offset,
                                   "events": len(batch.records), "ms": round(seconds * 1000, 1),
                                   "steps": {k: round(v * 1000, 1) for k, v in batch.steps.items()},
                                   "gc_ms": round(batch.gc_seconds * 1000, 1),
                                   "trace_ids": trace_ids[:MAX_LOGGED_TRACES],
                                   "traces": len(trace_ids)}})
