"""Command line of the node agent.

One real node (the token in a file of mode 0600, or in $SUANLI_NODE_TOKEN):
    suanli-agent --server URL --token-file PATH [--gpus N --gpu-class NAME]
A fleet of simulated nodes registered with a provider's API key:
    suanli-agent --server URL --simulate N --gpu-class H100-80GB --gpus 8 \\
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

from suanli_agent import AGENT_VERSION
from suanli_agent.client import AgentClient
from suanli_agent.config import AgentConfig, plain_http_refusal
from suanli_agent.containers import (
    DEFAULT_PIDS_LIMIT,
    ContainerRuntime,
    ContainerRuntimeError,
    Limits,
    detect_runtime,
)
from suanli_agent.gpus import GpuDiscoveryError, discover_gpus, vram_gb_from_class
from suanli_agent.node import Node
from suanli_agent.runner import WorkloadPolicy
from suanli_agent.simulate import (
    FleetSpec,
    RegistrationError,
    build_fleet,
    register_nodes,
    run_fleet,
)
from suanli_agent.state import RunStateStore
from suanli_agent.workload_spec import SpecError, image_parse

logger = logging.getLogger("suanli.agent")


def default_state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "suanli-agent"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="suanli-agent",
        description="Suanli node agent: heartbeats, leases work, runs it, reports usage.",
    )
    parser.add_argument("--server", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding this node's token, mode 0600 and owned by the agent's user "
        "(else the token is read from $SUANLI_NODE_TOKEN)",
    )
    # Kept only to refuse it with a reason: see token_read.
    mode.add_argument("--token", default=None, help=argparse.SUPPRESS)
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
        "--lease-wait-s", type=int, default=30,
        help="hold a lease wait open this long so new work starts at once (0: rely on "
             "heartbeats' hints only)",
    )
    parser.add_argument(
        "--container-runtime",
        choices=["auto", "docker", "podman", "none"],
        default=None,
        help="how to run jobs' commands (default: auto - podman or docker if one answers; "
        "without one, commands run only with --allow-host-execution)",
    )
    parser.add_argument(
        "--default-image",
        default=None,
        help="image a job runs in when its spec names none (shown to the buyer)",
    )
    parser.add_argument(
        "--allow-host-execution",
        action="store_true",
        help="with no container runtime, run this node's own organization's commands on the "
        "host (the server then places no other organization's command here)",
    )
    parser.add_argument(
        "--allowed-registries",
        default="",
        help="comma-separated registry hosts images may come from (default: any; short "
        "names count as docker.io)",
    )
    parser.add_argument("--pull-timeout-s", type=float, default=600.0,
                        help="longest an image pull may take before the job fails")
    parser.add_argument(
        "--job-network",
        choices=["none", "internet"],
        default="none",
        help="offer jobs that ask for it the internet (default: no job has a network)",
    )
    parser.add_argument("--cpus-per-gpu", type=float, default=None,
                        help="CPUs a job gets per GPU (default: the host's CPUs / GPU count)")
    parser.add_argument("--memory-per-gpu-gb", type=float, default=None,
                        help="memory a job gets per GPU, swap equal (default: host / GPUs)")
    parser.add_argument("--pids-limit", type=int, default=DEFAULT_PIDS_LIMIT,
                        help="most processes a job's container may have")
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


class TokenRefused(Exception):
    """The node token cannot be read safely."""


TOKEN_ON_COMMAND_LINE = (
    "--token is refused: a command line is readable in /proc by every process on this "
    "machine, a job's among them. Write the token to a file only you can read "
    "(umask 077; printf '%s' TOKEN > node-token) and pass --token-file node-token, "
    "or set $SUANLI_NODE_TOKEN."
)


def token_read(token_file: Path | None, environ: dict[str, str] | None = None) -> str:
    """The node token from ``token_file`` (mode 0600 or stricter, owned by this user) or
    from $SUANLI_NODE_TOKEN."""
    if token_file is None:
        token = (environ if environ is not None else os.environ).get("SUANLI_NODE_TOKEN", "")
        if not token.strip():
            raise TokenRefused("give --token-file PATH (or $SUANLI_NODE_TOKEN), or --simulate N")
        return token.strip()
    try:
        fd = os.open(token_file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise TokenRefused(f"cannot open the token file {token_file}: {error.strerror}") from error
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.geteuid():
            raise TokenRefused(f"the token file {token_file} must be owned by the agent's user "
                               f"(uid {os.geteuid()}), not uid {info.st_uid}")
        if info.st_mode & 0o077:
            raise TokenRefused(f"the token file {token_file} is readable by others (mode "
                               f"{info.st_mode & 0o777:04o}): chmod 600 it")
        token = handle.read(4096).strip()
    if not token:
        raise TokenRefused(f"the token file {token_file} is empty")
    return token


def workload_policy(args: argparse.Namespace, container: ContainerRuntime | None,
                    work_root: Path | None) -> WorkloadPolicy:
    registries = tuple(r.strip() for r in args.allowed_registries.split(",") if r.strip())
    return WorkloadPolicy(
        container=container,
        default_image=args.default_image,
        allow_host_execution=args.allow_host_execution and container is None,
        allowed_registries=registries,
        pull_timeout_s=args.pull_timeout_s,
        work_root=work_root,
        network=args.job_network,
    )


def check_workload_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the workload options, if anything."""
    if args.default_image is not None:
        try:
            image_parse(args.default_image, field_name="--default-image")
        except SpecError as error:
            return f"--default-image: {error.message}"
    if args.pull_timeout_s <= 0:
        return "--pull-timeout-s must be positive"
    for name in ("cpus_per_gpu", "memory_per_gpu_gb"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            return f"--{name.replace('_', '-')} must be positive"
    return None


def run_single(args: argparse.Namespace, config: AgentConfig, stop: threading.Event) -> int:
    try:
        token = token_read(args.token_file)
    except TokenRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.environ.pop("SUANLI_NODE_TOKEN", None)
    try:
        gpus, source = discover_gpus(
            fake_count=args.gpus, gpu_class=args.gpu_class, vram_gb=args.vram_gb
        )
    except GpuDiscoveryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if source == "nvidia-smi" and args.gpus is not None and args.gpus != len(gpus):
        logger.info("--gpus %s ignored: nvidia-smi reports %s GPUs", args.gpus, len(gpus))
    limits = Limits.host_share(len(gpus), cpus_per_gpu=args.cpus_per_gpu,
                               memory_per_gpu_gb=args.memory_per_gpu_gb, pids=args.pids_limit)
    try:
        container = detect_runtime(
            args.container_runtime or "auto", pass_gpus=source == "nvidia-smi", limits=limits
        )
    except ContainerRuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    token_key = hashlib.sha256(token.encode()).hexdigest()[:16]
    state_dir = (args.state_dir or default_state_root()) / token_key
    name = f"node-{token_key[:6]}"
    store = RunStateStore(state_dir)
    policy = workload_policy(args, container, state_dir / "runs")
    logger.info(
        "[%s] agent %s starting: %s GPUs from %s (%s), commands run %s, state in %s",
        name,
        AGENT_VERSION,
        len(gpus),
        source,
        ", ".join(sorted({g.name for g in gpus})),
        f"in {container.kind} containers ({container.userns} user namespace)" if container
        else "on the host, own organization's jobs only" if policy.allow_host_execution
        else "nowhere (no container runtime; simulated jobs only)",
        state_dir,
    )
    node = Node(
        client=AgentClient(server=args.server, token=token, timeout_s=config.http_timeout_s),
        gpus=gpus,
        name=name,
        config=config,
        store=store,
        policy=policy,
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
    limits = Limits.host_share(fleet.gpus, cpus_per_gpu=args.cpus_per_gpu,
                               memory_per_gpu_gb=args.memory_per_gpu_gb, pids=args.pids_limit)
    try:
        container = detect_runtime(args.container_runtime or "auto", pass_gpus=False,
                                   limits=limits)
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
    for node, info in zip(nodes, registered, strict=True):
        node_dir = None if args.state_dir is None else args.state_dir / f"node-{info.id}"
        node.policy = workload_policy(args, container, None if node_dir is None
                                      else node_dir / "runs")
        if node_dir is not None:
            node.store = RunStateStore(node_dir)
    run_fleet(nodes, stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.token is not None:
        print(f"error: {TOKEN_ON_COMMAND_LINE}", file=sys.stderr)
        return 2
    problem = check_workload_args(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
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
        lease_wait_s=args.lease_wait_s,
    )
    stop = threading.Event()
    install_signal_handlers(stop)
    if args.simulate is not None:
        return run_simulated(args, config, stop)
    return run_single(args, config, stop)


if __name__ == "__main__":
    sys.exit(main())
