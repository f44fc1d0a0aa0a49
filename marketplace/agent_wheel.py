"""The node agent's wheel, as the server offers it to providers at /downloads/.

The agent is its own distribution in agent/; a provider's GPU machine installs it with
`pip install <server>/downloads/suanli_agent-<version>-py3-none-any.whl`. The wheel is built
from this server's own copy of agent/ on its first download and kept under
AGENT_WHEEL_DIR in a folder named after a digest of that source, so the file offered is
always the agent this server speaks to, and a changed agent gets a new build without anyone
remembering to run a step.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from django.conf import settings

from suanli_agent import __version__ as AGENT_VERSION

logger = logging.getLogger(__name__)

AGENT_SOURCE = Path(settings.BASE_DIR) / "agent"
# What goes into the wheel; build leftovers (build/, *.egg-info, caches) never count.
_SOURCE_PATTERNS = ("pyproject.toml", "README.md", "suanli_agent/**/*.py", "suanli_agent/py.typed")
_build_lock = threading.Lock()


class AgentWheelUnavailable(Exception):
    """The wheel could not be built (no agent source here, or pip failed)."""


def agent_wheel_name(version: str = AGENT_VERSION) -> str:
    # pip reads a wheel's name, version and tags from its file name and refuses any other
    # (PEP 427), so this is the name the download URL must end with.
    return f"suanli_agent-{version}-py3-none-any.whl"


def agent_source_digest(source: Path = AGENT_SOURCE) -> str:
    digest = hashlib.sha256()
    files = sorted({p for pattern in _SOURCE_PATTERNS for p in source.glob(pattern)
                    if "__pycache__" not in p.parts})
    if not files:
        raise AgentWheelUnavailable(f"no agent source in {source}")
    for path in files:
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def agent_wheel_path() -> Path:
    """The built wheel of this server's agent, built now if this source has none yet."""
    folder = Path(settings.AGENT_WHEEL_DIR) / agent_source_digest()
    wheel = folder / agent_wheel_name()
    if wheel.is_file():
        return wheel
    with _build_lock:
        if not wheel.is_file():
            _build(folder, wheel)
    return wheel


def _build(folder: Path, wheel: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="suanli-agent-wheel-") as scratch:
        # Built from a copy: setuptools writes build/ and *.egg-info beside the source,
        # which may be read-only (an installed server) and must stay clean (a checkout).
        source = Path(scratch) / "source"
        shutil.copytree(AGENT_SOURCE, source,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        out = Path(scratch) / "out"
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                 "--wheel-dir", str(out), str(source)],
                capture_output=True, text=True, check=False,
                timeout=settings.AGENT_WHEEL_BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as error:
            raise AgentWheelUnavailable("building the agent's wheel took too long") from error
        built = out / wheel.name
        if result.returncode != 0 or not built.is_file():
            logger.error("building the agent's wheel failed (exit %s): %s",
                         result.returncode, result.stderr[-2000:])
            raise AgentWheelUnavailable("building the agent's wheel failed")
        # Two processes building at once each replace the file whole: readers never see
        # half a wheel.
        staged = folder / f".{wheel.name}.{os.getpid()}.part"
        shutil.copyfile(built, staged)
        os.replace(staged, wheel)
