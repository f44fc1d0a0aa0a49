"""Command line of the node agent.

One real node:
    python -m scheduler.agent --server URL --token NODE_TOKEN [--gpus N --gpu-class NAME]
A fleet of simulated nodes registered with a provider's API key:
    python -m scheduler.agent --server URL --simulate N --gpu-class H100-80GB --gpus 8 \\
        --provider-key KEY [--region eu-west] [--name-prefix sim] [--vram-gb 80]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from scheduler.agent import AGENT_VERSION
from scheduler.agent.client import AgentClient
from scheduler.agent.config import AgentConfig, plain_http_refusal
from scheduler.agent.containers import ContainerRuntimeError, detect_runtime
from scheduler.agent.gpus import GpuDiscoveryError, discover_gpus, vram_gb_from_class
from scheduler.agent.node import Node
from scheduler.agent.simulate import (
    FleetSpec,
    RegistrationError,
    build_fleet,
    register_nodes,
    run_fleet,
)
from scheduler.agent.state import RunStateStore

logger = logging.getLogger("suanli.agent")


def default_state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "suanli-agent"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scheduler.agent",
        description="Suanli node agent: heartbeats, leases work, runs it, reports usage.",
    )
    parser.add_argument("--server", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--token",
        default=os.environ.get("SUANLI_NODE_TOKEN"),
        help="node token of this node (default: $SUANLI_NODE_TOKEN)",
    )
    mode.add_argument(
        "--simulate", type=int, metavar="N", help="register and run N simulated nodes"
    )
    parser.add_argument(
        "--provider-key",
        default=os.environ.get("SUANLI_PROVIDER_KEY"),
        help="provider API key used to register simulated nodes (default: $SUANLI_PROVIDER_KEY)",
    )
    parser.add_argument("--gpu-class", default=None, help="GPU class, e.g. H100-80GB")
    parser.add_argument("--gpus", type=int, default=None, help="number of (fake) GPUs per node")
    parser.add_argument(
        "--vram-gb", type=int, default=None, help="VRAM per GPU (default: from class)"
    )
    parser.add_argument("--region", default="eu-west")
    parser.add_argument("--name-prefix", default="sim")
    parser.add_argument(
        "--heartbeat-s",
        type=float,
        default=5.0,
        help="heartbeat interval until the server sets one",
    )
    parser.add_argument("--usage-interval-s", type=float, default=2.0)
    parser.add_argument(
        "--kill-grace-s",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL when stopping a command",
    )
    parser.add_argument("--backoff-cap-s", type=float, default=30.0)
    parser.add_argument("--http-timeout-s", type=float, default=10.0)
    parser.add_argument(
        "--container-runtime",
        choices=["auto", "docker", "podman", "none"],
        default=None,
        help="how to run a job's image (default: auto for a real node - docker or podman if "
        "one answers, else the host; none for simulated nodes)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where run state is kept across restarts (default: $XDG_STATE_HOME/suanli-agent "
        "for a real node, memory only for simulated nodes)",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow a plain http:// server that is not on this machine (the token is sent "
        "in clear)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every heartbeat too")
    parser.add_argument("--version", action="version", version=f"suanli-agent {AGENT_VERSION}")
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        stream=sys.stdout,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def run_single(args: argparse.Namespace, config: AgentConfig, stop: threading.Event) -> int:
    gpu_class = args.gpu_class or "GPU"
    try:
        gpus, source = discover_gpus(
            fake_count=args.gpus, gpu_class=gpu_class, vram_gb=args.vram_gb
        )
    except GpuDiscoveryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if source == "nvidia-smi" and args.gpus is not None and args.gpus != len(gpus):
        logger.info("--gpus %s ignored: nvidia-smi reports %s GPUs", args.gpus, len(gpus))
    try:
        container = detect_runtime(
            args.container_runtime or "auto", pass_gpus=source == "nvidia-smi"
        )
    except ContainerRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    token_key = hashlib.sha256(args.token.encode()).hexdigest()[:16]
    state_dir = (args.state_dir or default_state_root()) / token_key
    name = f"node-{token_key[:6]}"
    logger.info(
        "[%s] agent %s starting: %s GPUs from %s (%s), images run by %s, state in %s",
        name,
        AGENT_VERSION,
        len(gpus),
        source,
        ", ".join(sorted({g.name for g in gpus})),
        container.kind if container else "nobody (no container runtime)",
        state_dir,
    )
    node = Node(
        client=AgentClient(server=args.server, token=args.token, timeout_s=config.http_timeout_s),
        gpus=gpus,
        name=name,
        config=config,
        store=RunStateStore(state_dir),
        container=container,
    )
    node.start()
    stop.wait()
    node.stop()
    return 0


def run_simulated(args: argparse.Namespace, config: AgentConfig, stop: threading.Event) -> int:
    if not args.provider_key:
        print("error: --simulate needs --provider-key (or $SUANLI_PROVIDER_KEY)", file=sys.stderr)
        return 2
    if args.simulate < 1:
        print("error: --simulate must be at least 1", file=sys.stderr)
        return 2
    gpu_class = args.gpu_class or "H100-80GB"
    fleet = FleetSpec(
        count=args.simulate,
        gpu_class=gpu_class,
        gpus=args.gpus if args.gpus is not None else 8,
        vram_gb=args.vram_gb if args.vram_gb is not None else vram_gb_from_class(gpu_class),
        region=args.region,
        name_prefix=args.name_prefix,
    )
    try:
        container = detect_runtime(args.container_runtime or "none", pass_gpus=False)
    except ContainerRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        registered = register_nodes(
            server=args.server,
            provider_key=args.provider_key,
            fleet=fleet,
            config=config,
            stop=stop,
        )
    except RegistrationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    nodes = build_fleet(server=args.server, nodes=registered, fleet=fleet, config=config)
    for node in nodes:
        node.container = container
    if args.state_dir is not None:
        for node, info in zip(nodes, registered, strict=True):
            node.store = RunStateStore(args.state_dir / f"node-{info.id}")
    run_fleet(nodes, stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    refusal = plain_http_refusal(args.server, insecure_http=args.insecure_http)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    config = AgentConfig(
        heartbeat_s=args.heartbeat_s,
        usage_interval_s=args.usage_interval_s,
        kill_grace_s=args.kill_grace_s,
        backoff_cap_s=args.backoff_cap_s,
        http_timeout_s=args.http_timeout_s,
    )
    stop = threading.Event()
    install_signal_handlers(stop)
    if args.simulate is not None:
        return run_simulated(args, config, stop)
    if not args.token:
        print("error: give --token (or $SUANLI_NODE_TOKEN), or --simulate N", file=sys.stderr)
        return 2
    return run_single(args, config, stop)


if __name__ == "__main__":
    sys.exit(main())
