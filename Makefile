# Every target uses .venv at the repository root, created when absent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/suanli
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml agent/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# the buyer's `suanli` CLI and Python client, its own distribution
	$(PY) -m pip install --quiet -e clients/python
	# the node agent, its own distribution: the server imports its job-spec check
	# (suanli_agent.workload_spec, one source for both) and the demo runs its nodes
	$(PY) -m pip install --quiet -e agent
	touch $(STAMP)

install: $(STAMP)

## make run: the embedded default (SQLite, no servers) on http://127.0.0.1:8000
run: install
	$(PY) -m scripts.embedded

## make test: lint, types, migrations check, then the suite on PostgreSQL and Redis
test: install
	unset PYTHONDONTWRITEBYTECODE; \
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  scripts/with-test-services.sh scripts/test-all.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache


## make bench: every benchmark in bench/ (set BENCH_ARGS=--quick for the short run)
bench: install
	unset PYTHONDONTWRITEBYTECODE; \
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  scripts/with-test-services.sh scripts/bench-all.sh $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 var staticfiles
