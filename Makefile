# The two commands a newcomer needs: `make dev` (run everything) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install dev test lint bench bench-fairness bench-lifecycle bench-instrumentation bench-cluster prometheus bench-client clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@echo "creating $(VENV) and installing locked dependencies..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

dev: install
	$(BIN)/taskstream dev

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check taskstream tests bench
	$(BIN)/ruff format --check taskstream tests bench
	$(BIN)/mypy

# The benchmark suite (bench/README.md): private servers, every phase, the peers, one table.
# BENCH_ARGS="--quick" for a smoke run, e.g. BENCH_ARGS="--quick --phases drain,pickup".
bench: install
	$(BIN)/python bench/e2e.py $(BENCH_ARGS)

# Issue 12's fairness phase alone (not in `make bench`; ~5 min on 2 cores): skew, many tenants.
# BENCH_ARGS="--quick" for a smoke run (~1 min).
bench-fairness: install
	$(BIN)/python bench/e2e.py --phases fairness $(BENCH_ARGS)

# Issue 13's lifecycle phase alone (~2-4 min): drains with audit + encryption off and on, paired.
bench-lifecycle: install
	$(BIN)/python bench/e2e.py --phases lifecycle $(BENCH_ARGS)

# Issue 14's instrumentation phase alone (~2-4 min): drains with TASKSTREAM_METRICS off and on.
bench-instrumentation: install
	$(BIN)/python bench/e2e.py --phases instrumentation $(BENCH_ARGS)

# Debian's Prometheus (apt-get install prometheus) against a running `make dev`: it scrapes the
# API, worker and scheduler with the alert rules loaded; http://127.0.0.1:9090/alerts.
# Issue 16's cluster phase alone (~3-5 min): drains on one Redis and on a local 3-master Redis
# Cluster, paired.
bench-cluster: install
	$(BIN)/python bench/e2e.py --phases cluster $(BENCH_ARGS)

prometheus:
	@test -f .taskstream/prometheus.yml || { echo "start 'make dev' first (it writes .taskstream/prometheus.yml)"; exit 1; }
	@command -v prometheus >/dev/null || { echo "prometheus is not installed: sudo apt-get install prometheus"; exit 1; }
	prometheus --config.file=.taskstream/prometheus.yml --storage.tsdb.path=.taskstream/prometheus --web.listen-address=127.0.0.1:9090

# Issue 15's client overhead alone (~2 min): Client.submit vs a bare httpx loop, paired rounds
# against one API process; the median client/raw ratio must stay below 1.10.
bench-client: install
	$(BIN)/python bench/client_overhead.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .taskstream .pytest_cache .mypy_cache .ruff_cache
