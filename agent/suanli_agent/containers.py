"""Running a buyer's command in a hardened container (podman or docker), never on the host.

Both runtimes get the same hardening from one description (``hardening_flags``), close to
Kubernetes' "restricted" pod profile: container root is not host root (podman's
``--userns=auto``, docker's userns-remap, else a fixed unprivileged ``--user``), every
capability dropped, no privilege escalation, the runtime's default seccomp profile (never
overridden), pids, memory (swap equal, so none extra) and CPU limits from the node's
share per GPU, no network unless the job asks for the internet and the node offers it,
only the assigned GPUs, the job's own directory at ``/suanli`` and no other host path.
``--`` ends the runtime's options before the image, and the image is checked against the
reference grammar first, so nothing from a spec can be read as an option.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

RUNTIMES = ("podman", "docker")
MOUNT_POINT = "/suanli"
# An unprivileged user and group that no host account owns files as (nobody:nogroup).
FALLBACK_USER = "65534:65534"
DEFAULT_PIDS_LIMIT = 4096
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))

logger = logging.getLogger("suanli.agent")


class ContainerRuntimeError(Exception):
    """The container runtime asked for is missing or does not answer."""


@dataclass(frozen=True)
class Limits:
    """A node's share per GPU; a job gets ``gpu_count`` shares."""

    cpus_per_gpu: float
    memory_per_gpu_bytes: int
    pids: int = DEFAULT_PIDS_LIMIT

    @classmethod
    def host_share(cls, gpu_count: int, *, cpus_per_gpu: float | None = None,
                   memory_per_gpu_gb: float | None = None,
                   pids: int = DEFAULT_PIDS_LIMIT) -> Limits:
        """Defaults: the host's CPUs and memory divided by its GPU count."""
        gpus = max(1, gpu_count)
        cpus = cpus_per_gpu if cpus_per_gpu is not None else (os.cpu_count() or 1) / gpus
        if memory_per_gpu_gb is not None:
            memory = int(memory_per_gpu_gb * 1024**3)
        else:
            memory = host_memory_bytes() // gpus
        return cls(cpus_per_gpu=max(0.01, cpus), memory_per_gpu_bytes=max(6 * 1024**2, memory),
                   pids=max(16, pids))

    def for_gpus(self, gpu_count: int) -> tuple[str, int, int]:
        """(cpus, memory bytes, pids) for a job on ``gpu_count`` GPUs."""
        n = max(1, gpu_count)
        return f"{self.cpus_per_gpu * n:.2f}", self.memory_per_gpu_bytes * n, self.pids


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 4 * 1024**3


@dataclass(frozen=True)
class RunRequest:
    """One assignment's container: what the runtime is asked to run."""

    image: str
    argv: list[str]
    name: str
    gpu_indices: list[int]
    env_file: Path
    job_dir: Path
    gpu_count: int
    network: str = "none"  # "none" or "internet"


@dataclass(frozen=True)
class ContainerRuntime:
    kind: str  # "docker" or "podman"
    executable: str
    pass_gpus: bool  # only real GPUs (from nvidia-smi) are handed to containers
    version: str = ""
    # How container root is kept from being host root: "auto" (podman --userns=auto),
    # "remap" (the docker daemon's userns-remap) or "user" (a fixed unprivileged user).
    userns: str = "user"
    limits: Limits = field(default_factory=lambda: Limits.host_share(1))

    # -- the one description of a container's hardening -----------------------------

    def hardening_flags(self, request: RunRequest) -> list[str]:
        cpus, memory, pids = self.limits.for_gpus(request.gpu_count)
        flags = [
            "--rm",
            "--name", request.name,
            "--pull", "never",  # pulled before the clock starts, never while it runs
            "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--pids-limit", str(pids),
            "--memory", str(memory),
            "--memory-swap", str(memory),
            "--cpus", cpus,
            "--env-file", str(request.env_file),
            "--workdir", MOUNT_POINT,
        ]
        if request.network != "internet":
            flags += ["--network", "none"]
        flags += self._user_flags()
        flags += ["--volume", self._job_mount(request.job_dir)]
        flags += self._gpu_flags(request.gpu_indices)
        return flags

    def _user_flags(self) -> list[str]:
        if self.userns == "auto":
            return ["--userns", "auto"]
        if self.userns == "remap":
            return []
        return ["--user", FALLBACK_USER]

    def _job_mount(self, job_dir: Path) -> str:
        # podman's U gives the directory to whatever host uid the container's user maps to;
        # docker has no such option, so the agent hands the directory over itself.
        options = "rw,U" if self.kind == "podman" else "rw"
        return f"{job_dir}:{MOUNT_POINT}:{options}"

    def _gpu_flags(self, gpu_indices: list[int]) -> list[str]:
        if not (self.pass_gpus and gpu_indices):
            return []
        if self.kind == "docker":
            devices = ",".join(str(i) for i in gpu_indices)
            return ["--gpus", f"device={devices}"]
        flags: list[str] = []
        for index in gpu_indices:
            flags += ["--device", f"nvidia.com/gpu={index}"]
        return flags

    def run_argv(self, request: RunRequest) -> list[str]:
        return [self.executable, "run", *self.hardening_flags(request), "--",
                request.image, *request.argv]

    def prepare_job_dir(self, job_dir: Path) -> None:
        """Let the container's user write its directory (podman does it through U)."""
        if self.kind == "podman":
            return
        uid, gid = (int(part) for part in FALLBACK_USER.split(":"))
        if self.userns == "user" and os.geteuid() == 0:
            os.chown(job_dir, uid, gid)
            job_dir.chmod(0o700)
        else:
            # Its parent is the agent's 0700 run directory: no other host user gets in.
            job_dir.chmod(0o777)

    # -- images and lifecycle ------------------------------------------------------

    def image_present_argv(self, image: str) -> list[str]:
        if self.kind == "podman":
            return [self.executable, "image", "exists", "--", image]
        return [self.executable, "image", "inspect", "--format", "{{.Id}}", "--", image]

    def pull_argv(self, image: str) -> list[str]:
        return [self.executable, "pull", "--quiet", "--", image]

    def digest_argv(self, image: str) -> list[str]:
        template = "{{.Digest}}" if self.kind == "podman" else "{{index .RepoDigests 0}}"
        return [self.executable, "image", "inspect", "--format", template, "--", image]

    def stop_argv(self, name: str, grace_s: float) -> list[str]:
        return [self.executable, "stop", "--time", str(max(1, round(grace_s))), "--", name]

    def remove_argv(self, name: str) -> list[str]:
        return [self.executable, "rm", "--force", "--", name]

    def describe(self) -> dict[str, str]:
        """What the server is told about this node's isolation."""
        return {"kind": "container", "runtime": self.kind, "runtime_version": self.version}


def _info(executable: str) -> dict[str, object] | None:
    try:
        result = subprocess.run([executable, "info", "--format", "{{json .}}"],
                                capture_output=True, timeout=30, check=False, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _version(kind: str, info: dict[str, object]) -> str:
    if kind == "podman":
        version = info.get("version")
        return str(version.get("Version", "")) if isinstance(version, dict) else ""
    return str(info.get("ServerVersion", ""))


def subid_owner() -> str:
    """The name whose /etc/subuid and /etc/subgid ranges --userns=auto draws from."""
    return "containers" if os.geteuid() == 0 else getpass.getuser()


def subid_ranges_present(files: tuple[Path, ...] = SUBID_FILES) -> bool:
    owner = subid_owner()
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return False
        if not any(line.split(":", 1)[0] == owner for line in lines):
            return False
    return True


def _userns(kind: str, info: dict[str, object]) -> str:
    if kind == "podman":
        if subid_ranges_present():
            return "auto"
        owner = subid_owner()
        logger.warning(
            "podman's --userns=auto needs a %r range in /etc/subuid and /etc/subgid (e.g. "
            "'%s:2147483647:2147483648' in both); until then containers run as the fixed "
            "unprivileged user %s", owner, owner, FALLBACK_USER)
        return "user"
    options = info.get("SecurityOptions")
    if isinstance(options, list) and any("name=userns" in str(o) for o in options):
        return "remap"
    return "user"


def detect_runtime(choice: str, *, pass_gpus: bool,
                   limits: Limits | None = None) -> ContainerRuntime | None:
    """``choice`` is ``auto`` (the first of podman, docker that answers, else None),
    ``none``, or a runtime name that must answer."""
    if choice == "none":
        return None
    candidates = RUNTIMES if choice == "auto" else (choice,)
    for kind in candidates:
        executable = shutil.which(kind)
        if not executable:
            continue
        info = _info(executable)
        if info is None:
            continue
        return ContainerRuntime(
            kind=kind, executable=executable, pass_gpus=pass_gpus,
            version=_version(kind, info), userns=_userns(kind, info),
            limits=limits or Limits.host_share(1),
        )
    if choice != "auto":
        raise ContainerRuntimeError(f"container runtime {choice!r} not found or not answering")
    return None


HOST_ISOLATION = {"kind": "none", "runtime": "", "runtime_version": ""}
