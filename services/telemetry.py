"""Prometheus metrics with prometheus-client: one registry per process (per Runtime).

Series carry no tenant-identifying labels (no org, run or document ids): routes are
labelled by their template (`/v1/workflows/experiments/runs/{run_id}`), never the path.

- HTTP: `runledger_http_requests_total` and `runledger_http_request_duration_seconds`
  by method, route template and status (the middleware below).
- Projector (this process's own, observed as it works): events applied, batches and
  their latency, consensus time per document, transient faults retried, runs quarantined.
- Ledger-wide gauges, refreshed at scrape time from the same figures as /healthz: lag
  in events and seconds per partition, dead letters, quarantined runs, live projector
  processes, health.
"""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401 - re-exported for the route
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from projections.runtime import gc_policy
from projections.runtime.projector import Observer

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CONSENSUS_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30)


class Telemetry:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("runledger_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("runledger_http_request_duration_seconds", "HTTP request latency.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.events = Counter("runledger_projector_events", "Events applied by this process's projector.",
                              ["partition"], registry=registry)
        self.batch_latency = Histogram("runledger_projector_batch_duration_seconds",
                                       "Load + fold + write of one batch.", buckets=LATENCY_BUCKETS,
                                       registry=registry)
        self.consensus = Histogram("runledger_consensus_duration_seconds", "Consensus time per finished document.",
                                   buckets=CONSENSUS_BUCKETS, registry=registry)
        self.transient = Counter("runledger_projector_transient_faults", "Transient faults retried.",
                                 ["error"], registry=registry)
        self.quarantines = Counter("runledger_projector_quarantines", "Runs this process quarantined.",
                                   registry=registry)
        self.lag = Gauge("runledger_projection_lag", "Events on the log not yet applied.",
                         ["projection", "partition"], registry=registry)
        self.lag_seconds = Gauge("runledger_projection_lag_seconds",
                                 "Age of the oldest event not yet applied (0 when caught up).",
                                 ["projection", "partition"], registry=registry)
        self.stopped = Gauge("runledger_projection_stopped", "1 when a partition stopped (a store bug).",
                             ["projection", "partition"], registry=registry)
        self.dead_letters = Gauge("runledger_dead_letters", "Poison records set aside.", ["projection"],
                                  registry=registry)
        self.quarantined = Gauge("runledger_quarantined_runs", "Runs (aggregates) in quarantine.",
                                 registry=registry)
        self.projectors = Gauge("runledger_projector_processes_alive", "Projector processes with a fresh heartbeat.",
                                registry=registry)
        self.healthy = Gauge("runledger_healthy", "1 when /healthz answers ok.", registry=registry)
        self.serving_version = Gauge("runledger_read_model_serving_version",
                                     "The read-model version this process reads.", registry=registry)
        self.version_lag = Gauge("runledger_read_model_lag", "Events a read-model version is behind the log "
                                 "(a rebuild's progress while it is building).", ["version", "status"],
                                 registry=registry)
        registry.register(_GcPauses())

    def read_models(self, figures: dict) -> None:
        """Set the read-model gauges from services/api/read_models.py's figures."""
        self.serving_version.set(figures["serving_version"])
        self.version_lag.clear()
        for v in figures["versions"]:
            if "lag" in v:
                self.version_lag.labels(str(v["version"]), v["status"]).set(v["lag"])

    def observer(self) -> Observer:
        return _ProjectorObserver(self)

    def exposition(self, status: dict) -> bytes:
        """The text format, ledger-wide gauges set from `status` (services/api/status.py)."""
        for proj in status["projections"]:
            for p in proj["partitions"]:
                labels = (proj["name"], str(p["partition"]))
                self.lag.labels(*labels).set(p["lag"])
                self.lag_seconds.labels(*labels).set(p.get("lag_seconds") or 0)
                self.stopped.labels(*labels).set(1 if p.get("stopped") else 0)
            self.dead_letters.labels(proj["name"]).set(proj["dead_letters"])
        self.quarantined.set(len(status.get("quarantined", ())))
        self.projectors.set(sum(1 for m in status.get("projectors", ()) if m["alive"]))
        self.healthy.set(1 if status["status"] == "ok" else 0)
        return generate_latest(self.registry)


class _GcPauses:
    """`runledger_gc_pause_seconds`: the collector's pauses in this process, by generation,
    from what projections/runtime/gc_policy.py recorded (it cannot call a metric's
    `observe` from inside a collection: that takes a lock)."""

    def collect(self):
        family = HistogramMetricFamily("runledger_gc_pause_seconds", "Pauses of the cyclic garbage collector "
                                       "(the whole process stops).", labels=["generation"])
        for generation, counts in gc_policy.pauses.buckets.items():
            running, buckets = 0, []
            for bound, count in zip((*map(str, gc_policy.BUCKETS), "+Inf"), counts):
                running += count
                buckets.append((bound, running))
            family.add_metric([str(generation)], buckets, gc_policy.pauses.sums[generation])
        yield family


class _ProjectorObserver(Observer):
    def __init__(self, telemetry: Telemetry):
        self.t = telemetry

    def batch(self, partition: int, events: int, seconds: float, consensus: list[float]) -> None:
        self.t.events.labels(str(partition)).inc(events)
        self.t.batch_latency.observe(seconds)
        for spent in consensus:
            self.t.consensus.observe(spent)

    def transient(self, error: BaseException) -> None:
        self.t.transient.labels(type(error).__name__).inc()

    def quarantined(self, count: int) -> None:
        self.t.quarantines.inc(count)


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry):
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            status[0] = 499  # the client hung up before its body ended (services/api/errors.py)
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.telemetry.requests.labels(method, template, str(status[0])).inc()
            self.telemetry.latency.labels(method, template).observe(time.perf_counter() - started)
