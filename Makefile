# Benchmarks of issue 5 (see docs/benchmarks.md). Everything runs on 127.0.0.1: a private
# redis-server, a throw-away database on the local PostgreSQL, the reference wallet and
# gunicorn with config/gunicorn.py, all started and stopped by the runner.

PYTHON ?= $(shell test -x .venv/bin/python && echo .venv/bin/python || echo python3)
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-scale bench-profile bench-deps bench-test bench-inprocess

## make bench: the full run (about 4 minutes); updates docs/benchmarks.md
bench: bench-deps
	$(PYTHON) -m bench $(BENCH_ARGS)

## make bench-quick: short durations, a smoke check (about 1.5 minutes); prints only
bench-quick: bench-deps
	$(PYTHON) -m bench --quick $(BENCH_ARGS)

## make bench-scale: replay and first-time cashout/cancel with 1k and with 1M items in the
## database, in three alternating rounds (about 9 minutes)
bench-scale: bench-deps
	$(PYTHON) -m bench --scale $(BENCH_ARGS)

## make bench-profile: the quick run with py-spy sampling the app's workers during each wrk
## scenario; prints where their CPU went (raw stacks under instance/bench/profiles/)
bench-profile: bench-deps
	$(PYTHON) -m bench --quick --profile $(BENCH_ARGS)

## make bench-deps: wrk (Debian package) if missing; say what else is missing
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "bench: wrk is missing, installing it: apt-get install -y wrk"; \
	    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; \
	  fi; \
	  command -v wrk >/dev/null 2>&1 || { echo "bench: wrk is missing: apt-get install -y wrk (as root)"; exit 2; }; \
	}
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { \
	  echo "bench: redis-server is missing: apt-get install -y redis-server"; exit 2; }
	@test -x .venv/bin/python || echo "bench: no .venv: run python3 dev.py test once (or create it) first"

## make bench-inprocess: CPU per fresh cashout and per replay in this process (test client,
## fake wallet, local PostgreSQL, private redis-server); BENCH_ARGS=--profile adds cProfile
bench-inprocess:
	$(PYTHON) -m bench.inprocess $(BENCH_ARGS)

## make bench-test: the harness's own unit tests (no wrk or servers needed)
bench-test:
	$(PYTHON) -m pytest -q tests/unit/test_bench_harness.py
