#!/usr/bin/env bash
# Install what `make bench` needs: runledger with its bench extra (eventsourcing,
# psycopg, pyinstrument, py-spy) into .venv, wrk (Debian's package) when absent, and the
# Kafka and PostgreSQL the runner starts (scripts/kafka.sh, scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -c requirements.lock -e ".[bench]"
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
    elif command -v sudo >/dev/null; then
        sudo apt-get install -y -q wrk >/dev/null
    else
        echo "bench: wrk is not installed (apt-get install wrk); the read rows will say so" >&2
    fi
fi
bash scripts/kafka.sh install
bash scripts/postgres.sh install
