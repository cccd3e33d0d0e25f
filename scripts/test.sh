#!/usr/bin/env bash
# Install everything the tests need and run all of them, on every backend:
# the embedded default, a real Kafka broker (jars from Maven Central) and a real
# PostgreSQL (from apt when absent). The tests start and stop the servers themselves.
# Extra arguments go to pytest. RUNLEDGER_TEST_BACKENDS narrows the backends.
# Tests run in parallel (pytest-xdist, RUNLEDGER_TEST_WORKERS processes, default 3, idle ones steal
# queued tests from busy ones so the long fault tests do not end the run alone: most
# of a test's time is spent waiting on servers, so 3 keep 2 cores busy); each worker
# starts its own Kafka broker and PostgreSQL when it first needs them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -c requirements.lock -e ".[test]"
export RUNLEDGER_TEST_BACKENDS="${RUNLEDGER_TEST_BACKENDS:-embedded,kafka,postgres}"
case ",$RUNLEDGER_TEST_BACKENDS," in *,kafka,*) bash scripts/kafka.sh install ;; esac
case ",$RUNLEDGER_TEST_BACKENDS," in *,postgres,*) bash scripts/postgres.sh install ;; esac
# The console's browser tests (tests/browser, marker `browser`) drive Debian's Chromium.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
set +e
.venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=25 -n "${RUNLEDGER_TEST_WORKERS:-3}" --dist worksteal "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here, not a pass" >&2
    exit 1
fi
exit "$status"
