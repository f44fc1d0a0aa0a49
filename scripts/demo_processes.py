"""Processes of the embedded demo that act like people and machines: simulated GPU nodes
run by the real node agent, and a buyer submitting a trickle of jobs.

`python -m scripts.demo_processes agent` / `python -m scripts.demo_processes jobs`; both
read the demo API keys that `seed_demo` wrote to var/demo.json and wait for the server.
"""

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("SUANLI_DEMO_SERVER", "http://127.0.0.1:8000")


def _demo() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "var" / "demo.json").read_text())
    return data


def _wait_for_server() -> None:
    while True:
        try:
            if httpx.get(f"{SERVER}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


def agent() -> int:
    _wait_for_server()
    env = {**os.environ, "SUANLI_PROVIDER_KEY": _demo()["provider"]["api_key"]}
    fleet = [
        ("H100-80GB", 8, 80, "eu-west"),
        ("A100-80GB", 4, 80, "us-east"),
        ("L40S-48GB", 2, 48, "eu-west"),
    ]
    import subprocess

    # The embedded server is Django's runserver, which has no lease push (it answers
    # `lease?wait` with 503 lease_push_unavailable): the agents read their lease when the
    # heartbeat's hint says so, without first asking for a push they cannot have.
    no_push = ["--lease-wait-s", "0"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "suanli_agent", "--server", SERVER, "--simulate", "1",
             "--gpu-class", gpu_class, "--gpus", str(gpus), "--vram-gb", str(vram),
             "--region", region, "--name-prefix", f"demo-{gpu_class.lower()}",
             # each agent its own state (spooled logs, runs to resume): in one shared
             # directory, one agent's start-up clean-up removed another's spools
             "--state-dir", str(ROOT / "var" / "agent" / f"demo-{gpu_class.lower()}"),
             "--usage-interval-s", "2", *no_push],
            env=env,
        )
        for gpu_class, gpus, vram, region in fleet
    ]
    # The bank's nodes were registered by seed_demo (their capacity is deposited): each
    # runs under its own token, given in the environment, never on a command line.
    for node in _demo().get("bank_nodes", []):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "suanli_agent", "--server", SERVER,
             "--gpu-class", str(node["gpu_class"]), "--gpus", str(node["gpus"]),
             "--vram-gb", str(node["vram_gb"]), "--container-runtime", "none",
             "--state-dir", str(ROOT / "var" / "agent" / str(node["name"])),
             "--usage-interval-s", "2", *no_push],
            env={**env, "SUANLI_NODE_TOKEN": str(node["token"])},
        ))
    try:
        return max(p.wait() for p in procs)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        return 0


def _wait_for_nodes() -> None:
    """The demo's nodes register themselves at start: submit once they are online."""
    # The provider's own list: the catalog counts container nodes only, and without a
    # container runtime the demo's simulated nodes have none (they run simulated jobs).
    headers = {"Authorization": f"Api-Key {_demo()['provider']['api_key']}"}
    while True:
        try:
            answer = httpx.get(f"{SERVER}/api/v1/nodes/", headers=headers, timeout=5)
            # Anything but the page (a refusal while the server starts) is asked again.
            rows = answer.json().get("results") if answer.status_code == 200 else None
            if rows and sum(1 for n in rows if n.get("status") == "online") >= 3:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)


def jobs() -> int:
    _wait_for_server()
    _wait_for_nodes()
    headers = {"Authorization": f"Api-Key {_demo()['buyer']['api_key']}"}
    rng = random.Random()
    choices = [("H100-80GB", [1, 2, 4]), ("A100-80GB", [1, 2]), ("L40S-48GB", [1])]
    n = 0
    while True:
        gpu_class, counts = rng.choice(choices)
        body = {
            "spec": {"simulate": {"seconds": rng.randint(8, 40), "ai_tokens_per_second": 500}},
            "gpu_class": gpu_class,
            "gpu_count": rng.choice(counts),
            "max_duration_s": 120,
            "priority": rng.randint(0, 2),
        }
        try:
            r = httpx.post(f"{SERVER}/api/v1/jobs/", json=body, headers=headers, timeout=10,
                           follow_redirects=True)
            n += 1
            print(f"demo job {n}: {gpu_class} x{body['gpu_count']} -> {r.status_code} "
                  f"{r.text[:120]}", flush=True)
        except httpx.HTTPError as exc:
            print(f"demo job submit failed: {exc}", flush=True)
        time.sleep(rng.uniform(10, 25))


if __name__ == "__main__":
    sys.exit({"agent": agent, "jobs": jobs}[sys.argv[1]]())
