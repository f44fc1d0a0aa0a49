#!/usr/bin/env bash
# Every benchmark in bench/ (modules starting with "_" are helpers), one after another;
# each prints its figures and, last, one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
# bench.agent_api (and bench.time_to_start's load beside) drive the server with wrk and
# refuse to run without it: installed here where apt is available.
if ! command -v wrk >/dev/null && command -v apt-get >/dev/null; then
  echo "== installing wrk (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y --no-install-recommends wrk || { apt-get update && apt-get install -y --no-install-recommends wrk; }
  else
    sudo apt-get install -y --no-install-recommends wrk || { sudo apt-get update && sudo apt-get install -y --no-install-recommends wrk; }
  fi
fi
for module in bench/[a-z]*.py; do
  name=$(basename "$module" .py)
  echo "== bench.$name"
  .venv/bin/python -m "bench.$name" "$@"
done
