"""docs/configuration.md documents every setting the code reads, with its real default."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text()


def variables_read_by(*folders: str) -> set[str]:
    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"RUNLEDGER_[A-Z_]+", path.read_text()))
    return names


def doc_row(variable: str) -> str:
    rows = [line for line in DOC.splitlines() if line.startswith(f"| `{variable}` |")]
    assert rows, f"{variable} is read by the code but not documented in docs/configuration.md"
    return rows[0]


def test_every_variable_the_code_reads_is_documented():
    read = variables_read_by("events", "projections", "services")
    assert {"RUNLEDGER_DATA_DIR", "RUNLEDGER_KAFKA_BOOTSTRAP", "RUNLEDGER_DATABASE_URL", "RUNLEDGER_TOPIC",
            "RUNLEDGER_PARTITIONS", "RUNLEDGER_REPLICATION_FACTOR", "RUNLEDGER_BOOTSTRAP_KEY",
            "RUNLEDGER_WAIT_TIMEOUT"} <= read
    for variable in read:
        doc_row(variable)


def test_the_documented_defaults_are_the_code_defaults():
    settings_py = (ROOT / "services" / "settings.py").read_text()
    defaults = dict(re.findall(r'env\.get\("(RUNLEDGER_[A-Z_]+)", "([^"]*)"\)', settings_py))
    assert defaults, "no defaults found in services/settings.py"
    for variable, default in defaults.items():
        assert f"`{default}`" in doc_row(variable).split("|")[2], f"{variable}: the code's default is {default!r}"
