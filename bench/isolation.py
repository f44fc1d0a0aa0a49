"""Lease -> the command's first output line, through the agent, in a hardened podman
container; against `podman run --rm IMAGE true` measured in the same run (goal: the
agent's path at most 1.2x the anchor, p50).

The agent's path is what happens once a lease names the job: the spec checked, the image
looked up (present locally: no pull), the run directory and env file written, the
container started with every hardening flag, and its first stdout line read.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._machine import cpu_share
from suanli_agent.containers import Limits, detect_runtime
from suanli_agent.runner import ProcessExecution, WorkloadPolicy, build_execution

GOAL = 1.2


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _agent_once(policy: WorkloadPolicy, index: int, log: logging.Logger) -> float:
    started = time.perf_counter()
    execution = build_execution(
        spec={"command": ["echo", "first line"]}, gpu_indices=[0], max_duration_s=60,
        grace_s=5, log=log, policy=policy, container_name=f"suanli-bench-{index}",
        extra_env={"SUANLI_ASSIGNMENT_ID": str(index), "SUANLI_JOB_ID": str(index)})
    assert isinstance(execution, ProcessExecution)
    failure = execution.prepare()
    if failure is not None:
        raise SystemExit(f"prepare failed: {failure.reason}")
    execution.start()
    while not execution.stdout_tail:
        if execution.wait(0.0005) is not None and not execution.stdout_tail:
            raise SystemExit(f"no output: {execution.wait(0)}")
    elapsed = time.perf_counter() - started
    outcome = execution.wait(60)
    if outcome is None or not outcome.succeeded:
        raise SystemExit(f"run failed: {outcome}")
    return elapsed


def _anchor_once(executable: str, image: str) -> float:
    started = time.perf_counter()
    subprocess.run([executable, "run", "--rm", image, "true"], check=True,
                   capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 runs instead of 20")
    args = parser.parse_args()
    runs = 5 if args.quick else 20
    from tests.agent.podman_setup import podman_available, podman_machine_prepare

    if not podman_available():
        print("podman or busybox-static missing: nothing measured")
        print(json.dumps({"skipped": "no podman"}))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    try:
        image = podman_machine_prepare(work)
        runtime = detect_runtime("podman", pass_gpus=False,
                                 limits=Limits.host_share(1, memory_per_gpu_gb=1))
        assert runtime is not None
        policy = WorkloadPolicy(container=runtime, default_image=image,
                                work_root=work / "runs")
        log = logging.getLogger("bench.isolation")
        _anchor_once(runtime.executable, image)  # warm caches for both
        _agent_once(policy, 0, log)
        agent, anchor = [], []
        with cpu_share() as share:
            for i in range(runs):  # interleaved: both see the same machine
                anchor.append(_anchor_once(runtime.executable, image))
                agent.append(_agent_once(policy, i + 1, log))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    agent_p50, anchor_p50 = statistics.median(agent), statistics.median(anchor)
    figures: dict[str, object] = {
        "runs": runs,
        "userns": runtime.userns,
        "agent_p50_ms": round(agent_p50 * 1000, 1),
        "agent_p95_ms": round(_percentile(agent, 0.95) * 1000, 1),
        "anchor_p50_ms": round(anchor_p50 * 1000, 1),
        "anchor_p95_ms": round(_percentile(anchor, 0.95) * 1000, 1),
        "ratio_p50": round(agent_p50 / anchor_p50, 3),
        "goal": GOAL,
    }
    print(f"lease -> first output line through the agent ({runs} runs, {runtime.userns} "
          f"user namespace): p50 {figures['agent_p50_ms']} ms, p95 {figures['agent_p95_ms']} ms")
    print(f"anchor `podman run --rm IMAGE true`: p50 {figures['anchor_p50_ms']} ms, "
          f"p95 {figures['anchor_p95_ms']} ms")
    print(f"ratio p50 {figures['ratio_p50']} (goal <= {GOAL}); {share}")
    print(json.dumps(figures))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
