"""The golden corpus: every digit the engine produces for a few dozen documents is pinned.

A dependency bump (scipy, rapidfuzz, numpy, orjson, the Unicode tables of a new Python)
or a code change that moves one digit of one likelihood fails here. When the change is
deliberate, bump ENGINE_VERSION and regenerate (docs/metrics.md, "The golden corpus").
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from projections.domain.consensus import ENGINE_LIBRARIES, compute_consensus
from projections.domain.consensus.extract import alignment_work
from projections.domain.consensus.limits import EXACT_ALIGNMENT_WORK

ROOT = Path(__file__).resolve().parents[2]
CORPUS = json.loads((ROOT / "tests/fixtures/consensus_golden.json").read_text())


def recomputed(case: dict) -> dict:
    result = compute_consensus(case["block_type"], case["config"], case["votes"]).to_json()
    result.pop("engine_version"), result.pop("engine_libraries")
    return json.loads(json.dumps(result))


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_the_engine_reproduces_every_digit(case):
    assert recomputed(case) == case["expected"]


def test_the_corpus_covers_every_block_type_and_both_alignment_paths():
    assert {case["block_type"] for case in CORPUS} == {"extract", "for_each", "classifier", "split"}
    works = [sum(alignment_work(v) for v in case["votes"] if v is not None) for case in CORPUS]
    assert any(0 < w <= EXACT_ALIGNMENT_WORK for w in works)
    assert sum(w > EXACT_ALIGNMENT_WORK for w in works) >= 3
    assert any(not str(case["votes"]).isascii() for case in CORPUS)


def test_the_lock_file_pins_the_installed_engine_libraries():
    """CI and the image install with `-c requirements.lock`: the versions there are the
    ones the corpus was computed with."""
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)$", lock, re.M))
    for name in ("rapidfuzz", "scipy", "numpy", "orjson"):
        assert pins.get(name) == ENGINE_LIBRARIES[name], name


def test_each_result_records_the_libraries_behind_its_digits():
    result = compute_consensus("extract", {}, [{"a": "x"}]).to_json()
    assert set(result["engine_libraries"]) == {"rapidfuzz", "scipy", "numpy", "orjson", "unicode"}
    assert result["engine_libraries"]["unicode"] == __import__("unicodedata").unidata_version
