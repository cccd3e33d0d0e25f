"""`make bench`'s runner (bench/run.py) on the embedded default, on a tiny workload: it prints
one table whose rows are path | runledger figure | yardstick | ratio. Shape only: no speed
is asserted anywhere in the suite (figures live in docs/benchmarks.md)."""
from __future__ import annotations

import re

from bench import run

ARGS = ["--embedded-only", "--runs", "2", "--docs", "3", "--n", "3", "--repeat", "1",
        "--skip", "consensus", "--skip", "rebuild", "--skip", "bounded", "--skip", "notary"]


def table_cells(out: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| ")]


def test_the_runner_prints_one_row_per_embedded_projector_path(capsys, tmp_path):
    assert run.main([*ARGS, "--workdir", str(tmp_path)]) == 0

    header, *rows = table_cells(capsys.readouterr().out)
    assert header == ["path", "runledger", "yardstick (same run)", "ratio"]
    assert [row[0] for row in rows] == ["projector embedded (SQLite log -> SQLite), consensus off",
                                        "projector embedded (SQLite log -> SQLite), consensus on"]
    for path, ours, yardstick, ratio in rows:
        assert re.fullmatch(r"[\d,.]+ events/s", ours), ours
        if "not installed" not in yardstick:  # the bench extra brings the eventsourcing yardstick
            assert re.fullmatch(r"eventsourcing .*: [\d,.]+ events/s", yardstick), yardstick
            assert re.fullmatch(r"[\d.]+x", ratio), ratio


def test_the_bounded_cost_bench_prints_a_row_per_request_and_the_other_tenants(capsys, tmp_path):
    from bench import bench_bounded_cost

    assert bench_bounded_cost.main(["--docs", "12", "--passes", "3", "--duplicates", "10", "--reps", "1",
                                    "--budget", "1", "--idle", "1", "--workdir", str(tmp_path)]) == 0
    header, _, *rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    names = [row.split("|")[1].strip() for row in rows]
    assert "console timeline" in names and "verify over HTTP (start)" in names and "console experiments" in names
    assert names[-1].startswith("other organisation's `GET run` p99")
    requests = [row for row, name in zip(rows, names)
                if not name.startswith(("other organisation", "the verification job"))]
    assert len(requests) >= 19 and all(re.search(r"\d+ ms \(1x, \d+\)", row) for row in requests), rows
