"""Logging: plain text by default, one JSON object per line with RUNLEDGER_LOG_FORMAT=json.

In JSON, every line carries the request's context when there is one (`request_id`,
`org_id`, `run_id`, and `trace_id` from a W3C `traceparent` header: context variables
set by the API as a request is handled), and
the API writes one `request` line per answered request (method, route, status,
duration), so a request can be followed through the logs by its `x-request-id`.
Projectors write one `runledger.projector.batch` line per batch (partition, offsets,
events, and the `trace_ids` of its events), so a pass can be followed by its trace id
from the worker to the read model; text mode stays quiet about batches.
"""
from __future__ import annotations

import contextvars
import logging
import os
import sys
from datetime import datetime, timezone

import orjson

from events.trace import parse_header

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
org_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("org_id", default=None)
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
_CONTEXT = {"request_id": request_id, "org_id": org_id, "run_id": run_id, "trace_id": trace_id}

access = logging.getLogger("runledger.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        line |= {name: var.get() for name, var in _CONTEXT.items() if var.get() is not None}
        line |= getattr(record, "fields", {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def json_enabled() -> bool:
    return os.environ.get("RUNLEDGER_LOG_FORMAT", "text").lower() == "json"


def configure() -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_enabled():
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.WARNING)  # runledger.migrate says what changed
    logging.getLogger("runledger.projector.batch").setLevel(logging.INFO if json_enabled() else logging.WARNING)


def use_traceparent(header: str | None) -> None:
    """A valid W3C `traceparent` on a request puts its trace id on the request's log lines
    (event ingestion reads the header by the same rule and stamps it on its events)."""
    traceparent = parse_header(header)
    if traceparent:
        trace_id.set(traceparent[3:35])


def log_request(method: str, route: str, status: int, seconds: float, path_params: dict,
                caller_org: str | None) -> None:
    """One line per answered request, in JSON mode (text mode stays quiet, as before).
    The org and run are passed in: values set inside the route's own task do not reach
    the middleware's context."""
    if not json_enabled():
        return
    if caller_org is not None:
        org_id.set(caller_org)
    if "run_id" in path_params:
        run_id.set(str(path_params["run_id"]))
    access.info("%s %s %s", method, route, status,
                extra={"fields": {"method": method, "route": route, "status": status,
                                  "duration_ms": round(seconds * 1000, 2)}})
