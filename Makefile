.PHONY: serve test unit bench
serve:  ## install and start on the embedded default
	bash scripts/serve.sh
test:   ## install test needs (Kafka, PostgreSQL) and run every test on every backend
	bash scripts/test.sh
unit:   ## fast: pure tests only
	.venv/bin/python -m pytest tests/unit -q
bench:  ## benchmarks (results go to docs/benchmarks.md by hand)
	.venv/bin/python bench/bench_consensus.py
	.venv/bin/python bench/bench_projector.py
