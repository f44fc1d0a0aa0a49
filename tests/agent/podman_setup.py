"""Real podman for the isolation tests: this machine's configuration, and a local image.

No registry is reachable here, so the test image is built from a local root filesystem:
Debian's static busybox copied into ``bin/`` with its applets as links, tarred and
``podman import``-ed. On these machines podman works with runc and lowered ulimits (crun
fails under cgroups v1 hybrid without CAP_SYS_RESOURCE): a ``containers.conf`` named by
``CONTAINERS_CONF`` says so. That is the machine's setting, not the agent's. podman's
``--userns=auto`` needs a ``containers`` range in /etc/subuid and /etc/subgid; set-up adds
one when it runs as root and the range is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from suanli_agent.containers import ContainerRuntime, Limits, detect_runtime

IMAGE = "localhost/suanli-test-busybox:1"
BUSYBOX = Path("/bin/busybox")
SUBID_RANGE = "containers:2147483647:2147483648"
CONTAINERS_CONF = """[engine]
runtime = "runc"

[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
"""
MIB = 1024**2
# Small on purpose: the fork bomb and the memory hog meet them quickly.
TEST_LIMITS = Limits(cpus_per_gpu=1.0, memory_per_gpu_bytes=64 * MIB, pids=64)


def _ensure_subid_ranges() -> None:
    if os.geteuid() != 0:
        return
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        lines = path.read_text().splitlines() if path.exists() else []
        if not any(line.split(":", 1)[0] == "containers" for line in lines):
            with path.open("a") as handle:
                handle.write(SUBID_RANGE + "\n")


def _rootfs_tar() -> bytes:
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "tmp", "etc", "proc", "sys", "dev", "suanli"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buffer.getvalue()


def podman_available() -> bool:
    return shutil.which("podman") is not None and BUSYBOX.exists()


def podman_machine_prepare(conf_dir: Path) -> str:
    """Name this machine's containers.conf in CONTAINERS_CONF (for this process and its
    children), add the sub-id range, import the test image if absent; the image's name."""
    conf = conf_dir / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    os.environ["CONTAINERS_CONF"] = str(conf)
    _ensure_subid_ranges()
    exists = subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True,
                            check=False)
    if exists.returncode != 0:
        subprocess.run(["podman", "import", "-", IMAGE], input=_rootfs_tar(),
                       capture_output=True, check=True, timeout=120)
    return IMAGE


@pytest.fixture(scope="session")
def podman_machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """CONTAINERS_CONF set for this session and the test image present; its name."""
    if not podman_available():
        pytest.skip("podman and busybox-static are needed (.ci/run installs them)")
    previous = os.environ.get("CONTAINERS_CONF")
    yield podman_machine_prepare(tmp_path_factory.mktemp("podman"))
    if previous is None:
        os.environ.pop("CONTAINERS_CONF", None)
    else:
        os.environ["CONTAINERS_CONF"] = previous


@pytest.fixture(scope="session")
def podman(podman_machine: str) -> ContainerRuntime:
    runtime = detect_runtime("podman", pass_gpus=False, limits=TEST_LIMITS)
    assert runtime is not None
    return runtime


def containers_named(prefix: str) -> list[str]:
    """Containers (running or not) whose name starts with ``prefix``."""
    result = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"],
                            capture_output=True, text=True, check=True, timeout=60)
    return [name for name in result.stdout.split() if name.startswith(prefix)]
