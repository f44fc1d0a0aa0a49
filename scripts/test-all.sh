#!/usr/bin/env bash
# What `make test` runs once PostgreSQL and Redis answer: lint, types, import contracts,
# migrations, suite.
# The suite runs in two parts: everything that may overlap, on PYTEST_WORKERS processes;
# then the tests marked `serial` (concurrency, live workers, browsers, localstripe) in one.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
echo "== ruff"; $VENV/bin/ruff check .
echo "== mypy"; $VENV/bin/mypy .
echo "== import contracts (.importlinter)"; $VENV/bin/lint-imports --no-cache
echo "== migrations"; $VENV/bin/python manage.py makemigrations --check --dry-run
echo "== pytest (parallel part)"
$VENV/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" -m "not serial" "$@"
echo "== pytest (serial part)"
$VENV/bin/python -m pytest -n 0 -m "serial" "$@"
