"""Where `suanli login` keeps the server and the API key: one JSON file, mode 0600."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8000"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "suanli" / "config.json"


def load() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    if os.environ.get("SUANLI_SERVER"):
        data["server"] = os.environ["SUANLI_SERVER"]
    if os.environ.get("SUANLI_API_KEY"):
        data["api_key"] = os.environ["SUANLI_API_KEY"]
    return data


def save(*, server: str, api_key: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before the key is written: never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"server": server, "api_key": api_key}, handle)
    os.chmod(path, 0o600)
    return path
