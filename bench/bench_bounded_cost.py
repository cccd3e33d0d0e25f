"""Bounded cost (issue 17): every request on a long run answers within its targets, and
another organisation does not feel them.

    .venv/bin/python -m bench.bench_bounded_cost                 # 2,000 documents x 7 passes + 5,000 duplicates
    .venv/bin/python -m bench.bench_bounded_cost --quick         # 200 x 7 + 500, a smoke run
    .venv/bin/python -m bench.bench_bounded_cost --json out.json # the figures, for bench/run.py

Starts `runledger serve` on the embedded default (SQLite log and read model, the projector
in the API's process) with JSON logs, so each request's *server* time is read from its
access line (by its `x-request-id`). Organisation A reports one run of `--docs` documents
x `--passes` passes and `--duplicates` duplicate pass reports over HTTP, as a hostile
tenant would; organisation B has a small run. First B's `GET run` is timed alone for
`--idle` seconds (its idle p99); then, while a separate process keeps timing it, every
request of the issue's table and every console page is asked on A's long run, each
repeated until `--reps` answers or `--budget` seconds. The table: each request's median
server time and bytes against 300 ms and 1 MB, and B's p99 against 2 x its idle p99 + 20 ms.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.console_session import sign_in_sync  # noqa: E402
from tests.server import ServerProcess, create_key  # noqa: E402

KEY_A = "rl_bench_bounded_org_a_0123456789"
TARGET_MS, TARGET_BYTES = 300.0, 1_000_000
LIMIT = 60 * 60


@dataclass
class Measured:
    name: str
    status: list[int] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    note: str = ""
    job: str = ""  # a verification job this request started
    began: float = 0.0  # time.time() of its first and after its last answer: the other
    ended: float = 0.0  # tenant's GETs between them are this request's neighbours
    tenant_p99_ms: float | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.server_ms) if self.server_ms else None

    @property
    def max_bytes(self) -> int | None:
        return max(self.bytes) if self.bytes else None

    @property
    def met(self) -> bool:
        return (self.median_ms is not None and self.median_ms <= TARGET_MS and self.max_bytes <= TARGET_BYTES
                and all(s < 500 for s in self.status))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.bench_bounded_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=7, choices=[3, 5, 7])
    parser.add_argument("--duplicates", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5, help="answers per request (at most)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per request (at least one answer)")
    parser.add_argument("--idle", type=float, default=8.0, help="seconds of the other tenant's idle loop")
    parser.add_argument("--quick", action="store_true", help="200 documents, 500 duplicates, 2 answers each")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.duplicates, args.reps, args.budget, args.idle = 200, 500, 2, 10.0, 4.0
    return args


def say(message: str) -> None:
    print(f"[bounded {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the scenario ------------------------------------------------------------------------

def ok(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} "
                           f"{response.text[:500]}")
    return response.json()


def output(doc: int, p: int) -> dict:
    """An invoice extraction: the passes agree on most fields, not all."""
    return {"invoice_number": f"INV-{doc:05}", "vendor": "ACME Corp" if p % 3 else "Acme Corporation",
            "total": round(100 + doc * 1.5 + (0.01 if p == 6 else 0), 2), "currency": "EUR",
            "date": "2026-11-30", "lines": [{"sku": f"SKU-{doc % 17}", "qty": 1 + p % 2, "price": 9.5},
                                            {"sku": "SKU-X", "qty": 2, "price": 4.25}]}


def a_run(client: httpx.Client, workflow: str, docs: int, passes: int, duplicates: int) -> dict:
    """A block, an experiment of `docs` documents, a run, every pass and `duplicates`
    reports sent again; returns the run's ids."""
    ok(client.put(f"/v1/workflows/{workflow}/blocks/invoice", json={"type": "extract", "config": {}}))
    documents = [{"handle_inputs": {"invoice": {"type": "json", "data": {"n": i}}}} for i in range(docs)]
    experiment = ok(client.post("/v1/workflows/experiments", json={
        "workflow_id": workflow, "block_id": "invoice", "n_consensus": passes, "name": f"{workflow} invoices",
        "documents": documents}))
    run = ok(client.post("/v1/workflows/experiments/runs", json={"experiment_id": experiment["id"]}))
    doc_ids, after = [], None
    while True:
        page = ok(client.get("/v1/workflows/experiments/results", params={
            "run_id": run["id"], "order": "asc", "limit": 1000, **({"after": after} if after else {})}))
        doc_ids += [r["document_id"] for r in page["data"]]
        after = page["list_metadata"]["after"]
        if after is None:
            break
    events = [{"type": "DocumentPassCompleted", "run_id": run["id"],
               "payload": {"document_id": doc, "pass_index": p, "output": output(n, p), "duration_ms": 900}}
              for n, doc in enumerate(doc_ids) for p in range(passes)]
    rng = random.Random(17)
    events += [rng.choice(events) for _ in range(duplicates)]
    for start in range(0, len(events), 500):
        response = client.post("/v1/ledger/events", json={"events": events[start:start + 500]})
        if response.status_code not in (200, 202):
            raise RuntimeError(f"ingest: {response.status_code} {response.text[:300]}")
    return {"run_id": run["id"], "experiment_id": experiment["id"], "documents": doc_ids}


def projected(client: httpx.Client, admin: str, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ok(client.get("/v1/ledger/projections", headers={"Api-Key": admin}))
        main = next(p for p in status["projections"] if p["name"] == "main")
        if main["lag"] == 0:
            return
        time.sleep(1)
    raise TimeoutError("the projection did not catch up")


# -- the other tenant --------------------------------------------------------------------

def sample(url: str, key: str, path: str, ready, stop, out: str) -> None:
    """In its own process: `GET path` again and again until `stop` is set; latencies to `out`."""
    took = []
    with httpx.Client(base_url=url, headers={"Api-Key": key}, timeout=120) as client:
        client.get(path).raise_for_status()  # connected and warm: the timing starts now
        ready.set()
        while not stop.is_set():
            started, at = time.perf_counter(), time.time()
            client.get(path).raise_for_status()
            took.append((at, (time.perf_counter() - started) * 1000))
    Path(out).write_text(json.dumps(took))


class Tenant:
    def __init__(self, url: str, key: str, path: str, workdir: Path):
        self.args, self.workdir = (url, key, path), workdir

    def __enter__(self) -> Tenant:
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop = context.Event(), context.Event()
        self.out = str(self.workdir / f"tenant-{uuid.uuid4().hex[:8]}.json")
        self.process = context.Process(target=sample, args=(*self.args, self.ready, self.stop, self.out), daemon=True)
        self.process.start()
        if not self.ready.wait(120):
            raise RuntimeError("the other tenant's sampler did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.process.join(180)

    def latencies(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """Milliseconds of the GETs that started between `since` and `until` (time.time())."""
        return [ms for at, ms in json.loads(Path(self.out).read_text()) if since <= at < until]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- the requests -------------------------------------------------------------------------

def requests_of(scene: dict) -> list[tuple[str, str, str, dict]]:
    """(name, method, path, params) of every request of the issue's table and every console page."""
    run, doc, exp = scene["run_id"], scene["documents"][len(scene["documents"]) // 2], scene["experiment_id"]
    metrics = "/v1/workflows/experiments/metrics"
    return [
        ("console timeline", "GET", f"/console/runs/{run}/timeline", {}),
        ("console as-of slider, one step (i=10)", "GET", f"/console/runs/{run}/as-of", {"i": 10}),
        ("verify over HTTP (start)", "POST", f"/v1/ledger/runs/{run}/verifications", {}),
        ("GET run?as_of=<its first event>", "GET", f"/v1/workflows/experiments/runs/{run}",
         {"as_of": scene["first_position"]}),
        ("console run page", "GET", f"/console/runs/{run}", {}),
        ("metrics by_target (one path)", "GET", metrics, {"run_id": run, "view": "by_target", "target_path": "vendor"}),
        ("metrics by_document (one document)", "GET", metrics, {"run_id": run, "view": "by_document", "document_id": doc}),
        ("metrics votes (one document)", "GET", metrics,
         {"run_id": run, "view": "votes", "document_id": doc, "target_path": "vendor"}),
        ("history, first page of 1,000", "GET", f"/v1/workflows/experiments/runs/{run}/events",
         {"limit": 1000, "order": "asc"}),
        ("metrics summary", "GET", metrics, {"run_id": run}),
        ("experiments page (limit=30)", "GET", "/v1/workflows/experiments", {"workflow_id": "wf_long", "limit": 30}),
        ("results page (limit=1000)", "GET", "/v1/workflows/experiments/results", {"run_id": run, "limit": 1000}),
        ("runs page (limit=100)", "GET", "/v1/workflows/experiments/runs", {"limit": 100}),
        ("console runs list", "GET", "/console/runs", {}),
        ("console run page's live poll", "GET", f"/console/runs/{run}/live", {}),
        ("console metrics page (votes of one document)", "GET", f"/console/runs/{run}/metrics",
         {"document_id": doc, "target_path": "vendor"}),
        ("console experiments", "GET", "/console/experiments", {}),
        ("console experiment page", "GET", f"/console/experiments/{exp}", {}),
        ("console operations (admin)", "GET", "/console/operations", {}),
    ]


def ask(clients: dict, name: str, method: str, path: str, params: dict, args) -> Measured:
    client = clients["admin" if "(admin)" in name else "a"]
    measured, started = Measured(name, began=time.time()), time.monotonic()
    while len(measured.status) < args.reps and (not measured.status or time.monotonic() - started < args.budget):
        rid = uuid.uuid4().hex
        try:
            response = client.request(method, path, params=params, headers={"x-request-id": rid})
        except httpx.TimeoutException:
            measured.note = "timed out"
            break
        measured.status.append(response.status_code)
        measured.bytes.append(len(response.content))
        if response.status_code == 202 and "location" in response.headers:
            measured.job = response.headers["location"]  # a verification job: followed at the end
        measured.server_ms.append(rid)  # resolved from the server's access log afterwards
    measured.ended = time.time()
    return measured


def server_times(log_path: Path) -> dict[str, float]:
    found = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"duration_ms"' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("request_id") and "duration_ms" in entry:
            found[entry["request_id"]] = entry["duration_ms"]
    return found


def followed(client: httpx.Client, location: str, timeout: float = 1800) -> dict:
    """The verification job started by the table's request, polled until it ends (it runs
    in the server's verification worker while the other requests are asked)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ok(client.get(location))
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(1)
    took = None
    if job.get("started_at") and job.get("finished_at"):
        from datetime import datetime
        took = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    result = job.get("result") or {}
    return {"status": job["status"], "seconds": took, "events": result.get("events"), "ok": result.get("ok"),
            "error": job.get("error")}


def console_client(url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"Api-Key": key}, timeout=LIMIT, follow_redirects=False)
    answer = sign_in_sync(client, key)
    if answer.status_code not in (302, 303):
        raise RuntimeError(f"console login: {answer.status_code} {answer.text[:300]}")
    return client


# -- the whole ----------------------------------------------------------------------------

def run(args) -> dict:
    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="rl-bounded-") as tmp:
            return _run(args, Path(tmp))
    return _run(args, Path(args.workdir))


def _run(args, workdir: Path) -> dict:
    env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY_A, "RUNLEDGER_LOG_FORMAT": "json", "RUNLEDGER_WAIT_TIMEOUT": "60"}
    with ServerProcess(workdir / "server", env) as server:
        admin = create_key(server, "default", admin=True)
        key_b = create_key(server, "org_b")
        with httpx.Client(base_url=server.url, headers={"Api-Key": KEY_A}, timeout=LIMIT) as client_a, \
                httpx.Client(base_url=server.url, headers={"Api-Key": key_b}, timeout=LIMIT) as client_b:
            say(f"organisation A: {args.docs} documents x {args.passes} passes + {args.duplicates} duplicates")
            started = time.monotonic()
            small = a_run(client_b, "wf_small", 5, 3, 0)  # first: A's backlog would delay its commands
            scene = a_run(client_a, "wf_long", args.docs, args.passes, args.duplicates)
            projected(client_a, admin)
            say(f"reported and projected in {time.monotonic() - started:.0f} s")
            first = ok(client_a.get(f"/v1/workflows/experiments/runs/{scene['run_id']}/events",
                                    params={"limit": 1, "order": "asc"}))["data"][0]
            scene["first_position"] = first["position"]
            tenant_path = f"/v1/workflows/experiments/runs/{small['run_id']}"
            with Tenant(server.url, key_b, tenant_path, workdir) as idle:
                time.sleep(args.idle)
            idle_p99, idle_count = p99(idle.latencies()), len(idle.latencies())
            say(f"organisation B idle: p99 {idle_p99:.1f} ms over {idle_count} GETs")
            clients = {"a": console_client(server.url, KEY_A), "admin": console_client(server.url, admin)}
            measured = []
            with Tenant(server.url, key_b, tenant_path, workdir) as busy:
                began = time.time()
                for name, method, path, params in requests_of(scene):
                    measured.append(ask(clients, name, method, path, params, args))
                    say(f"{name}: {measured[-1].status}")
                asked = time.time()
                job = next((m.job for m in measured if m.job), None)
                verification = followed(client_a, job) if job else None
                ended = time.time()
            during = busy.latencies(began, asked)
            for m in measured:
                near = busy.latencies(m.began, m.ended)
                m.tenant_p99_ms = p99(near) if near else None
            busy_p99, busy_count = p99(during), len(during)
            alone = busy.latencies(asked, ended)
            if verification is not None and alone:
                verification |= {"tenant_p99_ms": p99(alone), "tenant_gets": len(alone),
                                 "tenant_met": p99(alone) <= 2 * idle_p99 + 20}
            for client in clients.values():
                client.close()
        times = server_times(server.log_path)
    for m in measured:
        m.server_ms = [times[rid] for rid in m.server_ms if rid in times]
    return {"docs": args.docs, "passes": args.passes, "duplicates": args.duplicates,
            "requests": [asdict(m) | {"median_ms": m.median_ms, "max_bytes": m.max_bytes, "met": m.met}
                         for m in measured],
            "verification": verification,
            "tenant": {"idle_p99_ms": idle_p99, "idle_gets": idle_count, "busy_p99_ms": busy_p99,
                       "busy_gets": busy_count, "target_ms": 2 * idle_p99 + 20,
                       "met": busy_p99 <= 2 * idle_p99 + 20}}


def table(result: dict) -> str:
    lines = [f"| request on the long run ({result['docs']:,} x {result['passes']} + {result['duplicates']:,} "
             f"duplicates) | server time, median | bytes | within 300 ms / 1 MB | other tenant's p99 meanwhile |",
             "|---|---|---|---|---|"]
    for r in result["requests"]:
        ms = "–" if r["median_ms"] is None else f"{r['median_ms']:,.0f} ms"
        size = "–" if r["max_bytes"] is None else f"{r['max_bytes'] / 1e6:.2f} MB"
        statuses = ",".join(sorted({str(s) for s in r["status"]}))
        near = "–" if r.get("tenant_p99_ms") is None else f"{r['tenant_p99_ms']:.0f} ms"
        lines.append(f"| {r['name']} | {ms} ({len(r['server_ms'])}x, {statuses}){' ' + r['note'] if r['note'] else ''}"
                     f" | {size} | {'yes' if r['met'] else 'NO'} | {near} |")
    v = result.get("verification")
    if v:
        took = "–" if v["seconds"] is None else f"{v['seconds']:,.1f} s"
        lines.append(f"| the verification job itself (worker process; informational) | {took}, {v['status']}, "
                     f"{v['events']} events, ok={v['ok']}{', ' + v['error'] if v['error'] else ''} | – | – | – |")
        if "tenant_p99_ms" in v:
            lines.append(f"| other organisation's `GET run` p99 while the verification job runs alone "
                         f"(after the requests) | {v['tenant_p99_ms']:.1f} ms ({v['tenant_gets']} GETs) | – | "
                         f"{'yes' if v['tenant_met'] else 'NO'} | – |")
    t = result["tenant"]
    lines.append(f"| other organisation's `GET run` p99 while they ran | {t['busy_p99_ms']:.1f} ms "
                 f"({t['busy_gets']} GETs) | idle p99 {t['idle_p99_ms']:.1f} ms ({t['idle_gets']} GETs) | "
                 f"{'yes' if t['met'] else 'NO'} (target {t['target_ms']:.1f} ms) | – |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
