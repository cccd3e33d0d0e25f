.PHONY: serve test unit bench
serve:  ## install and start on the embedded default
	bash scripts/serve.sh
test:   ## install test needs (Kafka, PostgreSQL) and run every test on every backend
	bash scripts/test.sh
unit:   ## fast: pure tests only
	.venv/bin/python -m pytest tests/unit -q
bench:  ## runledger beside its yardsticks in one run, one table (BENCH_ARGS="--quick" for a smoke run)
	bash bench/setup.sh
	.venv/bin/python -m bench.run $(BENCH_ARGS)
