"""Table rows over HTTP and the producer SDK, against `runledger serve` (`--api-workers` API
processes) beside one `runledger project` on Kafka + PostgreSQL (the workload projected,
consensus on), and the bare app beside it.

- reads: wrk on GET run, list runs, metrics summary vs the bare app returning the same bytes;
- ingestion: POST /v1/ledger/events in batches of 100 vs the bare app appending the same
  bodies to Kafka; the producer SDK over Kafka vs bare aiokafka sending the same events;
- ingestion until visible: the same batches, timed until the projector has applied them
  (the maximum sustained rate: appended *and* projected);
- append -> visible: at half that sustained rate, one pass appended and read back with its
  position token, vs the same two calls on the bare app (no projection).
"""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from events.codec import encode
from events.kafka_log import KafkaEventLog
from events.log import Message
from events.producer import Producer

from . import bare_kafka, servers, wrk
from .procstat import cpu_seconds
from .infra import Infra
from .ingest import CONCURRENCY, PassPool, append_to_visible, bodies, flat_out
from .table import Figure, Row
from .workload import ORG, Workload, created_only

TOPIC = "bench.api"
PARTITIONS = 6
BATCH = 100
INGEST = "/v1/ledger/events"
RUNS = "/v1/workflows/experiments/runs"


async def append_workload(infra: Infra, workload: Workload, pool: Workload) -> None:
    """The workload, and the pool's runs created (their passes are sent over HTTP later),
    on the topic the servers project."""
    log = KafkaEventLog(infra.kafka, topic=TOPIC, partitions=PARTITIONS)
    await log.start()
    try:
        await log.append(workload.messages + [Message(e.aggregate_id, encode(e)) for e in created_only(pool)])
    finally:
        await log.close()


def endpoints(run_id: str) -> dict[str, str]:
    return {"GET run": f"{RUNS}/{run_id}", "list runs": RUNS,
            "metrics summary": f"/v1/workflows/experiments/metrics?run_id={run_id}"}


async def rows(args, infra: Infra, workload: Workload, say) -> list[Row]:
    per_rep = workload.runs * workload.docs * workload.n
    latency_budget = 3 * per_rep + 2000
    pool = Workload(math.ceil(args.repeat * (2 * per_rep + latency_budget) / (workload.docs * workload.n)),
                    workload.docs, workload.n, prefix="pool")
    await append_workload(infra, workload, pool)
    with tempfile.TemporaryDirectory(prefix="rl-bench-http-") as tmp:
        workdir = Path(tmp)
        async with servers.runledger(infra, TOPIC, workdir, getattr(args, "api_workers", 1)) as (server, key, admin):
            async with httpx.AsyncClient(base_url=server.url, headers={"Api-Key": key}, timeout=120,
                                         limits=httpx.Limits(max_connections=32)) as client:
                say(f"runledger serve on {server.url}: projecting {len(workload) + 3 * pool.runs:,} events")
                await servers.caught_up(client, admin)
                paths = endpoints(workload.run_ids[0])
                saved = workdir / "bodies"
                saved.mkdir()
                for name, path in paths.items():
                    response = await client.get(path)
                    response.raise_for_status()
                    (saved / f"{_slug(name)}.json").write_bytes(response.content)
                async with servers.bare(infra, saved, workdir) as bare_url:
                    async with httpx.AsyncClient(base_url=bare_url, timeout=120,
                                                 limits=httpx.Limits(max_connections=32)) as bare:
                        pids = (server.proc.pid, bare_url.pid)
                        return await _measure(args, infra, client, key, admin, bare, paths, PassPool(pool), per_rep,
                                              say, pids)


async def _measure(args, infra, client, key, admin, bare, paths, pool: PassPool, per_rep: int, say,
                   pids: tuple[int, int]) -> list[Row]:
    out: list[Row] = []
    if "api" not in args.skip:
        out += _reads(args, str(client.base_url), key, str(bare.base_url), paths, say, pids)
    if "ingest" not in args.skip:
        out += await _ingestion(args, infra, client, admin, bare, paths, pool, per_rep, say)
    return out


def _reads(args, base: str, key: str, bare_base: str, paths: dict[str, str], say,
           pids: tuple[int, int]) -> list[Row]:
    """Requests per second under wrk, and requests per CPU-second of the serving process(es)
    during that load: the second is what a machine shared with the load generator,
    PostgreSQL and the projector does not blur (a process waiting for a core costs no CPU)."""
    if not wrk.available():
        return [Row(f"`{name}`", Figure("req/s", note="wrk not installed (apt-get install wrk)")) for name in paths]
    figures = {name: (Figure("req/s"), Figure("req/s")) for name in paths}
    per_cpu = {name: (Figure("requests per CPU-second"), Figure("requests per CPU-second")) for name in paths}
    for i in range(args.repeat):
        for name, path in paths.items():
            ours, yard = figures[name]
            for figure, cpu, pid, url, headers in (
                    (ours, per_cpu[name][0], pids[0], base + path, {"Api-Key": key}),
                    (yard, per_cpu[name][1], pids[1], f"{bare_base}/body/{_slug(name)}", None)):
                before = cpu_seconds(pid)
                load = wrk.run(url, args.duration, headers)
                cpu.values.append(load.requests / max(cpu_seconds(pid) - before, 1e-9))
                figure.values.append(load.rps)
                figure.p50.append(load.p50_ms)
                figure.p99.append(load.p99_ms)
            say(f"reads rep {i + 1} {name}: {ours.values[-1]:,.0f} req/s vs bare {yard.values[-1]:,.0f}; "
                f"{per_cpu[name][0].values[-1]:,.0f} vs {per_cpu[name][1].values[-1]:,.0f} per CPU-second")
    note = f"wrk -t{wrk.THREADS} -c{wrk.CONNECTIONS}"
    rows = []
    for name, (ours, yard) in figures.items():
        rows.append(Row(f"`{name}` ({note})", ours, "bare FastAPI, same bytes, same uvicorn", yard))
        rows.append(Row(f"`{name}`: server CPU per request", per_cpu[name][0], "bare FastAPI", per_cpu[name][1]))
    return rows


async def _ingestion(args, infra, client, admin, bare, paths, pool: PassPool, per_rep: int, say) -> list[Row]:
    http, http_bare, sdk, sdk_bare, sustained = (Figure("passes/s") for _ in range(5))
    for i in range(args.repeat):
        batches = bodies(pool.events(per_rep), BATCH)
        started = time.perf_counter()
        http.values.append(await flat_out(client, INGEST, batches, BATCH))
        await servers.caught_up(client, admin, poll=0.02)
        sustained.values.append(per_rep / (time.perf_counter() - started))
        http_bare.values.append(await flat_out(bare, "/ingest", batches, BATCH))
        wire = pool.events(per_rep)
        sdk.values.append(per_rep / await _sdk(infra, wire))
        built = Producer(None, org_id=ORG, producer="bench")
        messages = [Message(e.aggregate_id, encode(e)) for e in
                    (built.build(w["type"], w["run_id"], w["payload"]) for w in wire)]
        sdk_bare.values.append(per_rep / await bare_kafka.produce(infra.kafka, servers.BARE_TOPIC, PARTITIONS,
                                                                  messages))
        await servers.caught_up(client, admin)
        say(f"ingest rep {i + 1}: HTTP {http.values[-1]:,.0f} (until visible {sustained.values[-1]:,.0f}) vs bare "
            f"{http_bare.values[-1]:,.0f}; SDK {sdk.values[-1]:,.0f} vs bare aiokafka {sdk_bare.values[-1]:,.0f} passes/s")
    # Half the maximum *sustained* rate: the rate at which passes are appended and projected
    # (the end-to-end rate), not the append rate alone, which the projector may not keep up
    # with (then the backlog, and the wait, grows for as long as the load lasts).
    rate = statistics.median(sustained.values) / 2
    latency, latency_bare = Figure("ms"), Figure("ms")
    for i in range(args.repeat):
        background = bodies(pool.events(min(int(rate * args.duration), 3 * per_rep)), BATCH)
        probes = bodies(pool.events(int(args.duration / 0.01) + 50), 1)
        for figure, target, ingest, read in ((latency, client, INGEST, paths["GET run"]),
                                             (latency_bare, bare, "/ingest", f"/body/{_slug('GET run')}")):
            found = await append_to_visible(target, ingest, read, probes, background, rate, BATCH, args.duration)
            figure.values.append(found.p99_ms)
            figure.p50.append(found.p50_ms)
            figure.p99.append(found.p99_ms)
            await servers.caught_up(client, admin)
        say(f"latency rep {i + 1} at {rate:,.0f} passes/s: p99 {latency.values[-1]:.0f} ms "
            f"vs bare {latency_bare.values[-1]:.0f} ms")
    return [
        Row(f"ingestion over HTTP, batches of {BATCH} ({CONCURRENCY} clients, {_processes(args)})", http,
            "bare FastAPI parsing the same bodies, appending to Kafka", http_bare),
        Row(f"ingestion over HTTP until visible: appended and projected, batches of {BATCH} ({_processes(args)})",
            sustained, "bare FastAPI appending to Kafka (no projection)", http_bare),
        Row("ingestion through the producer SDK (Producer.over_kafka.emit_many)", sdk,
            "bare aiokafka, same events, acks=all", sdk_bare),
        Row(f"append -> visible over HTTP at half the max sustained rate ({rate:,.0f} passes/s, {_processes(args)})",
            latency,
            "bare app: append to Kafka + GET same bytes", latency_bare, ratio_note="of p99s, lower is better"),
    ]


async def _sdk(infra: Infra, wire: list[dict]) -> float:
    async with Producer.over_kafka(infra.kafka, org_id=ORG, topic=TOPIC, partitions=PARTITIONS,
                                   producer="bench") as producer:
        started = time.perf_counter()
        await producer.emit_many([(w["type"], w["run_id"], w["payload"]) for w in wire])
        return time.perf_counter() - started


def _processes(args) -> str:
    workers = getattr(args, "api_workers", 1)
    return f"{workers} API process{'es' if workers > 1 else ''} + runledger project"


def _slug(name: str) -> str:
    return name.replace(" ", "_")
