"""CPU per event of `codec.decode` (bytes -> validated Event) on the bench workload's records.

    .venv/bin/python -m bench.decode_cpu [--repeat 15]

Decodes every record of issue 11's workload (10,122 events) `--repeat` times and prints the
median CPU time (`process_time`: other jobs on the cores do not count) per event, for the
whole mix and for the passes alone. No instruction counter here (this VM's `perf stat -e
instructions` is not supported), so before -> after is measured by running this file in both
trees alternately (docs/benchmarks.md, "Decode"). Also `--models`: the models' path alone
(orjson + `from_dict`, what `decode` was before events/compiled.py), in the same process.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from bench.workload import Workload  # noqa: E402
from events import codec  # noqa: E402


def models(raw: bytes):
    return codec.from_dict(orjson.loads(raw))


def per_event(decoder, raws: list[bytes]) -> float:
    started = time.process_time()
    for raw in raws:
        decoder(raw)
    return (time.process_time() - started) / len(raws) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--models", action="store_true", help="the models' path alone, beside decode")
    args = parser.parse_args()
    raws = [m.value for m in Workload().messages]
    passes = [r for r in raws if b'"DocumentPassCompleted"' in r[:120]]
    decoders = {"decode": codec.decode, **({"models": models} if args.models else {})}
    figures: dict[str, list[float]] = {f"{name} {mix}": [] for name in decoders for mix in ("all", "passes")}
    for _ in range(args.repeat):
        for name, decoder in decoders.items():
            figures[f"{name} all"].append(per_event(decoder, raws))
            figures[f"{name} passes"].append(per_event(decoder, passes))
    for label, values in figures.items():
        print(f"{label:16s} median {statistics.median(values):6.2f} us/event (min {min(values):.2f}, "
              f"max {max(values):.2f}, {len(values)} runs of {len(raws) if 'all' in label else len(passes)})")


if __name__ == "__main__":
    main()
