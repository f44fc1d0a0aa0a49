"""A benchmark never downgrades silently: bench.agent_api without wrk refuses to run
rather than report a Python load generator's rate as the server's."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_agent_api_bench_refuses_to_run_without_wrk(tmp_path: Path) -> None:
    # a PATH on which no wrk is found (the bench's interpreter is named by its full path)
    done = subprocess.run([sys.executable, "-m", "bench.agent_api", "--quick"], cwd=ROOT,
                          env={**os.environ, "PATH": str(tmp_path)}, capture_output=True,
                          text=True, timeout=60)

    assert done.returncode == 1
    assert "bench.agent_api needs wrk" in done.stderr
    assert "heartbeat_rps" not in done.stdout  # no figures at all
