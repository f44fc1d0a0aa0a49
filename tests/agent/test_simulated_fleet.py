"""The CLI in --simulate mode, as a real process against the fake server: it registers a
node with the provider key, heartbeats, leases, runs a simulated job reporting cumulative
usage under strictly increasing sequence numbers, and completes it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .fake_server import PROVIDER_KEY, FakeAgentServer, wait_for

REPO = Path(__file__).resolve().parents[2]


def test_simulated_node_registers_runs_a_job_and_completes_it(server: FakeAgentServer) -> None:
    # Given the agent started as a fleet of one simulated 8 x H100 node
    env = {**os.environ, "PYTHONPATH": str(REPO / "agent")}
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "suanli_agent",
            "--server",
            server.url,
            "--simulate",
            "1",
            "--gpu-class",
            "H100-80GB",
            "--gpus",
            "8",
            "--provider-key",
            PROVIDER_KEY,
            "--region",
            "eu-west",
            "--name-prefix",
            "simtest",
            "--usage-interval-s",
            "0.5",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: len(server.calls_to("/agent/lease/")) >= 1)
        registration = server.calls_to("/api/v1/nodes/")
        assert len(registration) == 1
        assert registration[0].authorization == f"Api-Key {PROVIDER_KEY}"
        assert registration[0].body["gpu_class"] == "H100-80GB"
        assert registration[0].body["gpu_count"] == 8
        assert registration[0].body["vram_gb"] == 80
        assert registration[0].body["region"] == "eu-west"
        assert registration[0].body["name"].startswith("simtest-")
        heartbeat = server.calls_to("/agent/heartbeat/")[0].body
        assert heartbeat["free_gpus"] == 8
        assert heartbeat["busy_gpus"] == 0
        assert [g["index"] for g in heartbeat["gpus"]] == list(range(8))
        assert heartbeat["gpus"][0] == {"index": 0, "name": "H100-80GB", "memory_mb": 81920}
        assert heartbeat["running"] == []

        # When the server places a 2-second simulated job on 2 of its GPUs
        server.add_assignment(
            1,
            12,
            gpu_count=2,
            job_id=34,
            spec={"simulate": {"seconds": 2, "ai_tokens_per_second": 100}},
        )

        # Then it runs, reports usage, and completes once with 2 s x 2 GPUs
        wait_for(lambda: 12 in server.completed, timeout=20)
    finally:
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=15)
    assert agent.returncode == 0, out

    usage = server.usage_of(12)
    seqs = [u["seq"] for u in usage]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 3
    assert usage[0]["gpu_seconds"] == 0
    gpu_seconds = [u["gpu_seconds"] for u in usage]
    assert gpu_seconds == sorted(gpu_seconds)
    assert all(g % 2 == 0 for g in gpu_seconds)
    assert server.completed[12] == [
        {"seq": seqs[-1] + 1, "gpu_seconds": 4, "ai_tokens": 200, "exit_code": 0}
    ]
    assert 12 not in server.failed
    busy = [c.body for c in server.calls_to("/heartbeat/") if c.body["running"] == [12]]
    assert busy and busy[0]["busy_gpus"] == 2 and busy[0]["free_gpus"] == 6

    # The log tells the story one line per event.
    assert "registered node simtest-" in out
    assert "heartbeat ok" in out
    assert "starting assignment 12 (job 34) on GPUs 0,1" in out
    assert "usage seq 2 gpu_seconds=" in out
    assert "completed assignment 12" in out
