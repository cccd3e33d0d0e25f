"""Consensus engine benchmark: CPU time per document, from a small invoice to the worst
document the event contract allows.

Run from the repository root:
    .venv/bin/python bench/bench_consensus.py [--runs 50]            # the reference invoice, in detail
    .venv/bin/python bench/bench_consensus.py --cases                 # every case, one table
    .venv/bin/python bench/bench_consensus.py --against REV [--reps 3]  # REV's engine beside this one

`--against` loads git revision REV's `projections/domain/consensus` (as a separate package, from
`git archive`) and times it and the working tree's engine on the small and the reference
invoice in the same process, alternately, `--reps` times; it prints each repetition, the
medians and their ratio, and checks that both engines return the same results.

Cases: `small` (the projector bench's invoice: 5 fields + 5 lines x 5 passes),
`reference` (40 fields + 25 lines x 7 passes), `lines-2000` (the reference invoice with the
longest list allowed, 2,000 lines x 7), `worst-list` (7 x 2,000 items of 19 fields, no item
identical across passes: every item takes the full banded comparison; ~40,000 values and
~510 KiB a pass), `worst-text` (7 x 220 non-ASCII texts of 2,000 characters, all in
long-text mode, ~510 KiB a pass), `worst-deep` (7 x 1,600 lists nested to depth 32,
~50,000 values a pass). Each case is checked against the event contract's limits
(events/bounds.py): the "within contract" column.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import io
import json
import platform
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import invoice as workload_invoice  # noqa: E402
from projections.domain.consensus import compute_consensus  # noqa: E402

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


small_invoice = workload_invoice  # bench/workload.py's document: 5 header fields, 5 lines, 20 % drift


def worst_list(p: int, items: int = 2000, fields: int = 19) -> dict:
    return {"rows": [{f"f{f}": (k * 31 + f + p) % 997 if f % 2 else f"v{k}.{f}.{p}" for f in range(fields)}
                     for k in range(items)]}


def worst_text(p: int, texts: int = 220, chars: int = 2000) -> dict:
    rng = random.Random(p)
    base = "Zürich Straße Ærøskøbing École naïve façade "
    return {"notes": [(base * (chars // len(base) + 1))[: chars - 8] + f"{rng.randrange(10**8):08d}"
                      for _ in range(texts)]}


def worst_deep(p: int, lists: int = 1600, depth: int = 32) -> dict:
    out = []
    for k in range(lists):
        value = f"leaf {k} {p % 2}"
        for _ in range(depth - 2):
            value = [value]
        out.append(value)
    return {"deep": out}


CASES = {
    "small": lambda: [small_invoice(random.Random(7 + i), 3) for i in range(5)],
    "reference": lambda: passes(),
    "lines-2000": lambda: passes(line_items=2000),
    "worst-list": lambda: [worst_list(p) for p in range(N_PASSES)],
    "worst-text": lambda: [worst_text(p) for p in range(N_PASSES)],
    "worst-deep": lambda: [worst_deep(p) for p in range(N_PASSES)],
}


def cpu_ms(votes: list, runs: int) -> list[float]:
    compute_consensus("extract", {}, votes)
    times = []
    for _ in range(runs):
        start = time.process_time()
        compute_consensus("extract", {}, votes)
        times.append((time.process_time() - start) * 1000)
    return times


def table(runs: int) -> None:
    print(f"python {platform.python_version()} on {platform.machine()}; CPU ms per document (median, max)")
    print("| case | passes | values per pass (max) | JSON bytes per pass (max) | within contract | runs | CPU median | CPU max |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in CASES.items():
        votes = make()
        n_runs = runs if name in ("small", "reference") else max(1, min(runs, 3))
        times = cpu_ms(votes, n_runs)
        values = max(_count(v) for v in votes)
        size = max(len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()) for v in votes)
        print(f"| {name} | {len(votes)} | {values} | {size} | {_within_contract(votes)} | {n_runs}"
              f" | {statistics.median(times):.2f} ms | {max(times):.2f} ms |")


def _within_contract(votes: list) -> str:
    try:
        from events.bounds import json_problem
    except ImportError:
        return "n/a"
    problems = [json_problem(v) for v in votes]
    return "yes" if not any(problems) else f"no: {next(p for p in problems if p)}"


def _count(value) -> int:
    stack, count = [value], 0
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def engine_at(rev: str, where: str):
    """`compute_consensus` of git revision `rev`, imported as its own package (the engine
    imports nothing from the repository but itself)."""
    for folder in ("projections/domain/consensus", "projections/consensus"):  # where it lives, where it lived
        found = subprocess.run(["git", "archive", rev, folder], cwd=ROOT, capture_output=True)
        if found.returncode == 0:
            break
    else:
        raise SystemExit(f"{rev}: no consensus engine in projections/domain/consensus or projections/consensus")
    package = Path(where) / "engine_at_rev"
    with tarfile.open(fileobj=io.BytesIO(found.stdout)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                target = package / Path(member.name).relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    sys.path.insert(0, where)
    return importlib.import_module("engine_at_rev").compute_consensus


def side_by_side(rev: str, reps: int) -> None:
    """CPU ms per document, REV's engine and this one alternately in one process."""
    documents = {  # name -> (documents, samples, calls per sample)
        "small": ([CASES["small"]()], 200, 50),
        "workload mix": (workload_mix(), 15, 1),
        "reference": ([passes()], 60, 1),
    }
    with tempfile.TemporaryDirectory() as where:
        engines = {rev: engine_at(rev, where), "this tree": compute_consensus}
        for name, (docs, _, _) in documents.items():
            same = all(len({json.dumps(engine("extract", {}, votes).to_json(), sort_keys=True)
                            for engine in engines.values()}) == 1 for votes in docs)
            print(f"{name}: {len(docs)} document(s), results identical: {same}")
        medians: dict[tuple[str, str], list[float]] = {}
        for rep in range(reps):
            for name, (docs, samples, batch) in documents.items():
                for label, engine in engines.items():
                    value = statistics.median(_cpu_samples(engine, docs, samples, batch))
                    medians.setdefault((name, label), []).append(value)
                    print(f"rep {rep + 1} {name} {label}: {value:.3f} ms")
    print(f"\npython {platform.python_version()}; CPU ms per document, median of {reps} repetitions")
    print(f"| document | {rev} | this tree | ratio |\n|---|---|---|---|")
    for name in documents:
        before, after = (statistics.median(medians[(name, label)]) for label in engines)
        print(f"| {name} | {before:.3f} | {after:.3f} | {before / after:.2f}x |")


def workload_mix(count: int = 200) -> list[list[dict]]:
    """`count` documents of the projector bench's kind, 5 passes each drawn independently
    (20 % of passes drift: most documents have some disagreement)."""
    rng = random.Random(11)
    return [[small_invoice(rng, doc) for _ in range(5)] for doc in range(count)]


def _cpu_samples(engine, docs: list, samples: int, batch: int) -> list[float]:
    """`samples` CPU times per document, each the mean over `batch` calls on each document."""
    for votes in docs:
        engine("extract", {}, votes)
    times = []
    for _ in range(samples):
        start = time.process_time()
        for _ in range(batch):
            for votes in docs:
                engine("extract", {}, votes)
        times.append((time.process_time() - start) * 1000 / (batch * len(docs)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--line-items", type=int, default=N_LINE_ITEMS)
    parser.add_argument("--cases", action="store_true", help="every case, one table")
    parser.add_argument("--against", metavar="REV", help="a git revision's engine beside this one")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.cases:
        table(args.runs)
        return
    if args.against:
        side_by_side(args.against, args.reps)
        return
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
