#!/usr/bin/env bash
# Install everything the tests need and run all of them, on every backend:
# the embedded default, a real Kafka broker (jars from Maven Central) and a real
# PostgreSQL (from apt when absent). The tests start and stop the servers themselves.
# Extra arguments go to pytest. RUNLEDGER_TEST_BACKENDS narrows the backends.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
export RUNLEDGER_TEST_BACKENDS="${RUNLEDGER_TEST_BACKENDS:-embedded,kafka,postgres}"
case ",$RUNLEDGER_TEST_BACKENDS," in *,kafka,*) bash scripts/kafka.sh install ;; esac
case ",$RUNLEDGER_TEST_BACKENDS," in *,postgres,*) bash scripts/postgres.sh install ;; esac
set +e
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here, not a pass" >&2
    exit 1
fi
exit "$status"
