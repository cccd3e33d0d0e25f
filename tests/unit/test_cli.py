"""`runledger --help` describes the command line as it is: every command, in one line."""
from __future__ import annotations

import re

import pytest

from services.cli import main


def help_text(capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_the_description_names_every_command_there_is(capsys):
    text = help_text(capsys)
    description = text.split("\n\n")[1]
    listed = re.findall(r"[a-z][a-z-]*", description.split(":", 1)[1].split(".")[0])
    commands = re.findall(r"^    ([a-z][a-z-]*)(?: |$)", text, flags=re.MULTILINE)  # the help's table of commands
    assert len(commands) >= 15 and {"serve", "project", "worker", "verify", "quarantine"} <= set(commands)
    assert listed == commands
