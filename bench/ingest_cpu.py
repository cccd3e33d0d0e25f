"""CPU per event of what `POST /v1/ledger/events` does to a body before the append, the
route as it was (issue 11 "before") beside the route as it is, in one process, interleaved.

Before: FastAPI read the body with the stdlib json and validated it as `IngestBody`; then
`codec.build` validated each payload for its natural key and again inside the envelope.
After: `services.api.ingest_body.ingest_items` (orjson, the body's shape) and one codec
validation. Both end in `encode`, and must give the same bytes (checked).

    .venv/bin/python -m bench.ingest_cpu [--batches 40] [--repeat 3] [--profile]

`before` here runs today's codec, which gained speed of its own; against the code as it
was, run `--at-hand BODY` (the route of whatever code is importable: the old one where
services/api/ingest_body.py does not exist) in a git worktree of the old commit and here,
alternately (docs/benchmarks.md, "Ingestion: before -> after", has the commands).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import orjson

from events.codec import build, encode, payload_class
from services.api.bodies import IngestBody

BATCH = 100


def body() -> bytes:
    from bench.workload import pass_payload

    rng = random.Random(11)
    return orjson.dumps({"events": [
        {"type": "DocumentPassCompleted", "run_id": f"run_{i % 40}", "occurred_at": "2026-01-01T00:00:00Z",
         "payload": pass_payload(rng, i // 5, i % 5)} for i in range(BATCH)]})


def before(raw: bytes) -> list[bytes]:
    parsed = IngestBody.model_validate(json.loads(raw))
    out = []
    for e in parsed.events:
        payload_class(e.type).model_validate(e.payload)  # the old build's first validation (natural key)
        out.append(encode(build(e.type, e.run_id, e.payload, org_id="org", producer="http:org",
                                occurred_at=e.occurred_at)))
    return out


def after(raw: bytes) -> list[bytes]:
    from services.api.ingest_body import ingest_items

    return [encode(build(i["type"], i["run_id"], i["payload"], org_id="org", producer="http:org",
                         occurred_at=i["occurred_at"], event_id=i["event_id"], schema_version=i["schema_version"],
                         trace=i["trace"])) for i in ingest_items(raw, "application/json")]


def at_hand(raw: bytes) -> list[bytes]:
    """The route of the code on sys.path: `after` if it has services/api/ingest_body.py, else
    the old route (FastAPI's json + IngestBody, then that code's own codec.build)."""
    try:
        return after(raw)
    except ImportError:
        parsed = IngestBody.model_validate(json.loads(raw))
        return [encode(build(e.type, e.run_id, e.payload, org_id="org", producer="http:org",
                             occurred_at=e.occurred_at)) for e in parsed.events]


def per_event_us(path, raw: bytes, batches: int) -> float:
    started = time.process_time()
    for _ in range(batches):
        path(raw)
    return (time.process_time() - started) / (batches * BATCH) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.ingest_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="pyinstrument of the route as it is")
    parser.add_argument("--write-body", type=Path, help="write the bench's body to this file and stop")
    parser.add_argument("--at-hand", type=Path, metavar="BODY", help="CPU per event of the importable code's route")
    args = parser.parse_args(argv)
    if args.write_body:
        args.write_body.write_bytes(body())
        return
    if args.at_hand:
        raw = args.at_hand.read_bytes()
        at_hand(raw)  # warm: imports, pydantic's first-call work
        print(f"{per_event_us(at_hand, raw, args.batches):.1f} us per event")
        return
    raw = body()
    assert before(raw) == after(raw), "the two paths must append the same bytes"
    figures: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.repeat):
        for name, path in (("before", before), ("after", after)):
            figures[name].append(per_event_us(path, raw, args.batches))
    old, new = statistics.median(figures["before"]), statistics.median(figures["after"])
    print(f"ingest route CPU per event (batches of {BATCH}, medians of {args.repeat}): "
          f"before {old:.1f} us, after {new:.1f} us, {old / new:.2f}x")
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        with profiler:
            for _ in range(args.batches):
                after(raw)
        print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
