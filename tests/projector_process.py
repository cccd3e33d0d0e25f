"""A real `runledger project` process (one member of a projector group), for tests."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ASSIGNED = re.compile(r"assigned partitions \[([\d, ]*)\]")


class ProjectorProcess:
    """`runledger project` as a subprocess, its log in a file."""

    def __init__(self, name: str, env: dict[str, str], group: str, directory: Path):
        self.log_path = directory / f"{name}.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, **env, "RUNLEDGER_DATA_DIR": str(directory / name)}
        self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "project", "--group", group],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.log_path.stem} exited with {self.proc.returncode}:\n{self.text()[-3000:]}")

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assignments(self) -> list[set[int]]:
        return [{int(p) for p in found.split(",") if p.strip()} for found in ASSIGNED.findall(self.text())]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM: the batch in hand commits, the member leaves the group; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; its batch in hand never commits, its partitions go after the session timeout."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """SIGKILL if still running (cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
