#!/usr/bin/env bash
# Every benchmark in bench/ (modules starting with "_" are helpers), one after another;
# each prints its figures and, last, one
# JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
for module in bench/[a-z]*.py; do
  name=$(basename "$module" .py)
  echo "== bench.$name"
  .venv/bin/python -m "bench.$name" "$@"
done
