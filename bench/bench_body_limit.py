"""Server memory under 150 MB request bodies (issue 8 finding 2): the peak RSS of a real
`runledger serve` before and after it is offered 150 MB with a wrong key, with a valid
key (declared by Content-Length, and chunked), and, for comparison, with the limit
raised above the body so it is read and parsed.

    .venv/bin/python -m bench.bench_body_limit

Prints one row per case: the status answered, how many bytes the server took before
answering, and VmHWM (peak RSS) of the server process after the case.
"""
from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

from tests.server import ServerProcess

KEY = "rl_bench_body_limit"
BODY = 150 * 1024 * 1024
PIECE = b"[" + b"1," * (512 * 1024 - 1) + b"1]"  # ~1 MiB of valid JSON-ish bytes


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def offer(server: ServerProcess, key: str, chunked: bool) -> tuple[int, int, float]:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    head = (f"POST /v1/ledger/events HTTP/1.1\r\nHost: x\r\nApi-Key: {key}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()
    sent, started = 0, time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        while sent < BODY and not answer:
            piece = PIECE if not chunked else b"%x\r\n%s\r\n" % (len(PIECE), PIECE)
            try:
                sock.sendall(piece)
                sent += len(PIECE)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.001)
            try:
                answer = sock.recv(4096)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
        if chunked and not answer:
            sock.sendall(b"0\r\n\r\n")
        sock.setblocking(True)
        while not answer:
            answer = sock.recv(4096)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent, time.perf_counter() - started


def main() -> None:
    print(f"{'case':50} {'status':>6} {'sent MiB':>9} {'s':>6} {'peak RSS MiB':>13}")
    for limit in (None, 2 * BODY):
        env = {"RUNLEDGER_BOOTSTRAP_KEY": KEY}
        if limit:
            env["RUNLEDGER_MAX_BODY_BYTES"] = str(limit)
        with ServerProcess(Path(tempfile.mkdtemp()) / "data", env) as server:
            label = "default limit (8 MiB)" if limit is None else "limit raised to 300 MB"
            print(f"{label + ': idle':50} {'':>6} {'':>9} {'':>6} {peak_rss_mib(server.proc.pid):13.0f}")
            for name, key, chunked in (("wrong key", "wrong", False), ("valid key, Content-Length", KEY, False),
                                       ("valid key, chunked", KEY, True)):
                status, sent, seconds = offer(server, key, chunked)
                print(f"{label + ': ' + name:50} {status:6} {sent / 2**20:9.0f} {seconds:6.2f} "
                      f"{peak_rss_mib(server.proc.pid):13.0f}")


if __name__ == "__main__":
    main()
