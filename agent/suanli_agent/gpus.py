"""Which GPUs this node has, and which of them are free."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

NVIDIA_SMI_QUERY = [
    "--query-gpu=index,name,memory.total",
    "--format=csv,noheader,nounits",
]


class GpuDiscoveryError(Exception):
    """The node's GPUs could not be determined."""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mb: int

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "memory_mb": self.memory_mb}


def parse_nvidia_smi(output: str) -> list[Gpu]:
    """Parse ``index, name, memory.total`` CSV lines (no header, no units)."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 3:
            raise GpuDiscoveryError(f"unexpected nvidia-smi line: {line!r}")
        index, name, memory = parts[0], ",".join(parts[1:-1]), parts[-1]
        try:
            gpus.append(Gpu(index=int(index), name=name, memory_mb=int(float(memory))))
        except ValueError as error:
            raise GpuDiscoveryError(f"unexpected nvidia-smi line: {line!r}") from error
    return gpus


def query_nvidia_smi(executable: str = "nvidia-smi") -> list[Gpu] | None:
    """The GPUs nvidia-smi reports, or None when nvidia-smi is not installed."""
    path = shutil.which(executable)
    if path is None:
        return None
    try:
        result = subprocess.run(
            [path, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GpuDiscoveryError(f"nvidia-smi failed: {error}") from error
    if result.returncode != 0:
        raise GpuDiscoveryError(
            f"nvidia-smi exited with {result.returncode}: {result.stderr.strip()[:300]}"
        )
    return parse_nvidia_smi(result.stdout)


def vram_gb_from_class(gpu_class: str, default: int = 80) -> int:
    """``H100-80GB`` -> 80; the default when the class name carries no size."""
    match = re.search(r"(\d+)\s*GB", gpu_class, flags=re.IGNORECASE)
    return int(match.group(1)) if match else default


def fake_gpus(count: int, *, name: str, memory_mb: int) -> list[Gpu]:
    return [Gpu(index=i, name=name, memory_mb=memory_mb) for i in range(count)]


def discover_gpus(
    *,
    fake_count: int | None,
    gpu_class: str | None,
    vram_gb: int | None = None,
    use_nvidia_smi: bool = True,
) -> tuple[list[Gpu], str]:
    """The node's GPUs and where they came from (``nvidia-smi`` or ``fake``).

    nvidia-smi wins when present; otherwise ``fake_count`` fake GPUs named after the class.
    """
    if use_nvidia_smi:
        found = query_nvidia_smi()
        if found is not None:
            return found, "nvidia-smi"
    if fake_count is None or gpu_class is None:
        # A provider's first run is often on a machine without NVIDIA's tools yet: say what
        # the agent needs instead of guessing a class the marketplace would sell wrongly.
        missing = [flag for flag, value in (("--gpus", fake_count), ("--gpu-class", gpu_class))
                   if value is None]
        raise GpuDiscoveryError(
            "nvidia-smi not found, so this node's GPUs cannot be discovered: pass --gpus N "
            "and --gpu-class NAME (for example --gpus 8 --gpu-class H100-80GB) to run it "
            f"with N simulated GPUs of that class ({' and '.join(missing)} not given)"
        )
    if fake_count < 1:
        raise GpuDiscoveryError("--gpus must be at least 1")
    memory_mb = (vram_gb if vram_gb is not None else vram_gb_from_class(gpu_class)) * 1024
    return fake_gpus(fake_count, name=gpu_class, memory_mb=memory_mb), "fake"


class GpuPool:
    """Hands out local GPU indices to runs; no index is ever given to two runs at once."""

    def __init__(self, gpus: list[Gpu]) -> None:
        self.gpus = list(gpus)
        self._free = sorted(gpu.index for gpu in gpus)
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self.gpus)

    @property
    def free_count(self) -> int:
        with self._lock:
            return len(self._free)

    @property
    def busy_count(self) -> int:
        return self.total - self.free_count

    def allocate(self, count: int) -> list[int] | None:
        """``count`` free indices (lowest first), or None if not enough are free."""
        with self._lock:
            if count < 1 or count > len(self._free):
                return None
            taken, self._free = self._free[:count], self._free[count:]
            return taken

    def release(self, indices: list[int]) -> None:
        with self._lock:
            known = {gpu.index for gpu in self.gpus}
            self._free = sorted(set(self._free) | (set(indices) & known))
