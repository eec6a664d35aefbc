# The benchmark (docs/benchmarks.md): our service, a peer built from off-the-shelf parts and
# a bare Flask endpoint, on a private PostgreSQL and redis-server, the reference wallet under
# gunicorn, all started and stopped by the runner on 127.0.0.1.

PYTHON ?= $(shell test -x .venv/bin/python && echo .venv/bin/python || echo python3)
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-profile bench-deps bench-test

## make bench: the full run (about 6 minutes); updates docs/benchmarks.md
bench: bench-deps
	$(PYTHON) -m bench $(BENCH_ARGS)

## make bench-quick: short runs, a smoke check (about 3 minutes); prints only
bench-quick: bench-deps
	$(PYTHON) -m bench --quick $(BENCH_ARGS)

## make bench-profile: the quick run with py-spy on our app's workers while wrk runs
bench-profile: bench-deps
	$(PYTHON) -m bench --quick --profile $(BENCH_ARGS)

## make bench-deps: wrk (Debian package) if missing, and the peer's libraries
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
	@$(PYTHON) -c "import aws_lambda_powertools, boto3" 2>/dev/null || \
	  $(PYTHON) -m pip install -q -r bench/requirements-peer.txt

## make bench-test: the benchmark's own tests (not part of the suite or CI)
bench-test:
	$(PYTHON) -m pytest -q tests/bench
