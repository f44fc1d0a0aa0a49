"""Running a job's ``image`` through a container runtime (docker or podman), when one works.

Without a working runtime the agent runs the command on the host and says so.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNTIMES = ("docker", "podman")
MOUNT_POINT = "/suanli"


class ContainerRuntimeError(Exception):
    """The container runtime asked for is missing or does not answer."""


@dataclass(frozen=True)
class ContainerRuntime:
    kind: str  # "docker" or "podman"
    executable: str
    pass_gpus: bool  # only real GPUs (from nvidia-smi) are handed to containers

    def run_argv(
        self,
        *,
        image: str,
        argv: list[str],
        name: str,
        gpu_indices: list[int],
        env_file: Path,
        workdir: Path,
    ) -> list[str]:
        """``docker run`` for one assignment: removed on exit, only its own GPUs (seen
        inside as 0..n-1), its environment from a file, the run directory at /suanli."""
        command = [
            self.executable,
            "run",
            "--rm",
            "--name",
            name,
            "--env-file",
            str(env_file),
            "--volume",
            f"{workdir}:{MOUNT_POINT}",
        ]
        if self.pass_gpus and gpu_indices:
            if self.kind == "docker":
                devices = ",".join(str(i) for i in gpu_indices)
                command += ["--gpus", f'"device={devices}"']
            else:
                for index in gpu_indices:
                    command += ["--device", f"nvidia.com/gpu={index}"]
        return [*command, image, *argv]

    def stop_argv(self, name: str, grace_s: float) -> list[str]:
        return [self.executable, "stop", "--time", str(max(1, round(grace_s))), name]

    def remove_argv(self, name: str) -> list[str]:
        return [self.executable, "rm", "--force", name]


def _answers(executable: str) -> bool:
    try:
        result = subprocess.run([executable, "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def detect_runtime(choice: str, *, pass_gpus: bool) -> ContainerRuntime | None:
    """``choice`` is ``auto`` (the first of docker, podman that answers, else None),
    ``none``, or a runtime name that must answer."""
    if choice == "none":
        return None
    candidates = RUNTIMES if choice == "auto" else (choice,)
    for kind in candidates:
        executable = shutil.which(kind)
        if executable and _answers(executable):
            return ContainerRuntime(kind=kind, executable=executable, pass_gpus=pass_gpus)
    if choice != "auto":
        raise ContainerRuntimeError(f"container runtime {choice!r} not found or not answering")
    return None
