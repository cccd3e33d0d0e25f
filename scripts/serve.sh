#!/usr/bin/env bash
# Install runledger into .venv and start it on the embedded default (SQLite log + read
# model under ./.runledger). Extra arguments go to `runledger serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -c requirements.lock -e .
exec .venv/bin/runledger serve "$@"
