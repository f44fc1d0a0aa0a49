#!/usr/bin/env bash
# What `make test` runs once PostgreSQL and Redis answer: lint, types, migrations, suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
echo "== ruff"; $VENV/bin/ruff check .
echo "== mypy"; $VENV/bin/mypy .
echo "== migrations"; $VENV/bin/python manage.py makemigrations --check --dry-run
echo "== pytest"
exec $VENV/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
