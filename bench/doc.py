"""Write the table into docs/benchmarks.md, between markers, leaving every other section alone."""
from __future__ import annotations

from pathlib import Path

START, END = "<!-- bench:table:start -->", "<!-- bench:table:end -->"


def write(path: Path, table: str, command: str, when: str, machine: str, repeat: int) -> None:
    block = "\n".join([
        START,
        f"Command: `{command}` ({when}). Machine: {machine}. Medians of {repeat} repetitions;"
        " ratio = runledger / yardstick.",
        "",
        table,
        END,
    ])
    text = path.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        title, _, body = text.partition("\n")
        text = f"{title}\n\n## One table: `make bench`\n\n{block}\n{body}"
    path.write_text(text)
