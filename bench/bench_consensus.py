"""Consensus engine benchmark: one invoice-like document, 7 passes with seeded disagreement.

Run from the repository root:  .venv/bin/python bench/bench_consensus.py [--runs 50]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from projections.consensus import compute_consensus  # noqa: E402

N_PASSES = 7
N_HEADER_FIELDS = 40
N_LINE_ITEMS = 25
SEED = 20240611


def invoice(rng: random.Random, line_items: int = N_LINE_ITEMS) -> dict:
    """40 header fields (short text, enums, numbers, booleans, dates, long text) + 25 line items."""
    doc: dict = {}
    for i in range(N_HEADER_FIELDS):
        kind = i % 5
        if kind == 0:
            doc[f"text_{i}"] = rng.choice(["ACME Corp.", "Globex GmbH", "Initech", "Umbrella S.A."])
        elif kind == 1:
            doc[f"amount_{i}"] = round(rng.uniform(1, 10_000), 2)
        elif kind == 2:
            doc[f"flag_{i}"] = rng.random() < 0.5
        elif kind == 3:
            doc[f"date_{i}"] = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        else:
            doc[f"note_{i}"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 18)))
    doc["line_items"] = [line_item(rng, k) for k in range(line_items)]
    return doc


def line_item(rng: random.Random, k: int) -> dict:
    quantity = rng.randint(1, 20)
    unit_price = round(rng.uniform(0.5, 500), 2)
    return {
        "sku": f"SKU-{1000 + k}",
        "description": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))),
        "quantity": quantity,
        "unit_price": unit_price,
        "amount": round(quantity * unit_price, 2),
    }


def perturb(truth: dict, rng: random.Random) -> dict:
    """One pass: mostly right, with the kinds of mistakes extraction passes make."""
    out = copy.deepcopy(truth)
    for key in list(out):
        if key != "line_items" and rng.random() < 0.12:
            out[key] = wrong(out[key], rng)
        elif key != "line_items" and rng.random() < 0.03:
            del out[key]
    items = [perturb_item(item, rng) for item in out["line_items"] if rng.random() > 0.04]
    if rng.random() < 0.3:
        items.append(line_item(rng, 900 + rng.randint(0, 9)))
    if rng.random() < 0.5:
        i, j = rng.randrange(len(items)), rng.randrange(len(items))
        items[i], items[j] = items[j], items[i]
    out["line_items"] = items
    return out


def perturb_item(item: dict, rng: random.Random) -> dict:
    return {k: wrong(v, rng) if rng.random() < 0.08 else v for k, v in item.items()}


def wrong(value, rng: random.Random):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return round(value * rng.choice([1.001, 0.999, 1.1, 0.5, 10]), 2)
    if isinstance(value, str) and len(value) > 40:
        words = value.split()
        words[rng.randrange(len(words))] = rng.choice(WORDS)
        return " ".join(words)
    if isinstance(value, str):
        return rng.choice([value.upper(), value.lower() + ".", value[:-1], None])
    return value


WORDS = (
    "steel bolt washer hex nut bracket panel cable conduit valve pump filter gasket seal "
    "bearing shaft motor relay fuse switch sensor module housing cover plate screw rivet"
).split()


def passes(seed: int = SEED, line_items: int = N_LINE_ITEMS) -> list[dict | None]:
    rng = random.Random(seed)
    truth = invoice(rng, line_items)
    return [perturb(truth, rng) for _ in range(N_PASSES)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--line-items", type=int, default=N_LINE_ITEMS)
    args = parser.parse_args()
    votes = passes(line_items=args.line_items)
    size = len(json.dumps(votes))
    compute_consensus("extract", {}, votes)  # warm caches and imports
    timings, cpu = [], []
    for _ in range(args.runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = compute_consensus("extract", {}, votes)
        timings.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    tracemalloc.start()
    compute_consensus("extract", {}, votes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    print(f"python {platform.python_version()} on {platform.machine()}, {args.runs} runs")
    print(f"input: {N_PASSES} passes x ({N_HEADER_FIELDS} fields + {args.line_items} line items), {size} bytes JSON")
    print(f"targets: {len(result.targets)}, document score: {result.score:.4f}")
    print(f"wall: median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms")
    print(f"cpu:  median {statistics.median(cpu):.1f} ms")
    print(f"peak memory (tracemalloc, one run): {peak / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
