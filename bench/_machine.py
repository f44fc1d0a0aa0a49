"""What the machine itself did during a measurement: on a shared virtual machine the
hypervisor can take a large share of the CPU ("steal"), and a figure taken meanwhile says
more about the neighbours than about the code. Benches print it beside their figures."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _cpu_times() -> list[int]:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq
    steal ...; empty where there is no /proc."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return []
    return [int(v) for v in first.split()[1:]]


@dataclass
class CpuShare:
    busy: float = 0.0
    stolen: float = 0.0

    def __str__(self) -> str:
        return f"CPU {self.busy:.0%} busy, {self.stolen:.0%} stolen by the hypervisor"


@contextmanager
def cpu_share() -> Iterator[CpuShare]:
    """Fill in, when the block ends, the share of all CPU time that was busy and that the
    hypervisor took (steal) while it ran."""
    share = CpuShare()
    before = _cpu_times()
    yield share
    after = _cpu_times()
    if len(before) < 8 or len(after) < 8:
        return
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1
    idle = delta[3] + delta[4]
    share.stolen = delta[7] / total
    share.busy = (total - idle - delta[7]) / total
