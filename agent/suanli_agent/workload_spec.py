"""What a job's spec may ask a node to run, checked the same way at submission and by
the agent before any process starts (so this module imports nothing of Django: the node
agent imports it too).

A spec either simulates a run (``{"simulate": {"seconds": N}}``) or runs a command in a
container: ``command`` (a shell string or an argv list), an optional ``image`` (the node's
default image otherwise), ``environment`` and ``network`` (``none`` unless the job needs
``internet`` and the node offers it). Every value is bounded, and the image is checked
against the distribution reference grammar so that nothing a buyer writes can be read by
a container runtime as one of its options.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_SPEC_BYTES = 64 * 1024
MAX_IMAGE_CHARS = 255
MAX_COMMAND_ITEMS = 256
MAX_ENVIRONMENT_KEYS = 64
MAX_ENVIRONMENT_BYTES = 32 * 1024
MAX_SIMULATED_S = 7 * 86400
RESERVED_ENV_PREFIX = "SUANLI_"
NETWORKS = ("none", "internet")
SPEC_KEYS = frozenset({"command", "image", "environment", "network", "simulate"})

# The distribution project's reference grammar (reference/regexp.go), without IPv6 hosts;
# the digest is sha256 only, the one algorithm registries serve.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
IMAGE_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


class SpecError(ValueError):
    """A spec refused; ``field`` names the part at fault, e.g. ``spec.image``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference. ``domain`` is None for a short name (``busybox``)."""

    text: str
    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str | None:
        """The registry host[:port] named, or None when the runtime's default applies."""
        return self.domain


@dataclass(frozen=True)
class CommandSpec:
    argv: list[str]
    image: ImageReference | None
    environment: dict[str, str] = field(default_factory=dict)
    network: str = "none"


@dataclass(frozen=True)
class SimulatedSpec:
    seconds: float
    ai_tokens_per_second: float = 0.0
    fail: bool = False
    exit_code: int | None = None


def image_parse(value: Any, *, field_name: str = "spec.image") -> ImageReference:
    if not isinstance(value, str):
        raise SpecError(field_name, "The image must be a string.")
    if not value or len(value) > MAX_IMAGE_CHARS:
        raise SpecError(field_name, f"The image must be 1 to {MAX_IMAGE_CHARS} characters.")
    if value.startswith("-"):
        raise SpecError(field_name, "The image must not start with '-'.")
    match = IMAGE_REFERENCE.fullmatch(value)
    if match is None:
        raise SpecError(
            field_name,
            "The image must be an image reference like 'registry.example.com:5000/team/"
            "train:1.2' or 'busybox@sha256:<64 hex>' (lowercase path, optional tag and digest).",
        )
    domain = match.group("domain")
    path = match.group("path")
    # As in the grammar: a first component without '.', ':' or 'localhost' is a path.
    if domain is not None and "." not in domain and ":" not in domain and domain != "localhost":
        if domain != domain.lower():
            raise SpecError(field_name, "Image path components are lowercase.")
        path, domain = f"{domain}/{path}", None
    return ImageReference(
        text=value, domain=domain, path=path, tag=match.group("tag"), digest=match.group("digest")
    )


def _no_nul(text: str, field_name: str) -> None:
    if "\x00" in text:
        raise SpecError(field_name, "NUL characters are not allowed.")


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        _no_nul(value, "spec.command")
        if not value.strip():
            raise SpecError("spec.command", "The command must not be empty.")
        return ["/bin/sh", "-c", value]
    if isinstance(value, list) and value and len(value) <= MAX_COMMAND_ITEMS:
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"spec.command[{index}]", "Every argument must be a string.")
            _no_nul(item, f"spec.command[{index}]")
        if not value[0]:
            raise SpecError("spec.command[0]", "The program must not be empty.")
        return list(value)
    raise SpecError(
        "spec.command",
        f"The command must be a non-empty string or a list of 1 to {MAX_COMMAND_ITEMS} strings.",
    )


def _environment(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError("spec.environment", "The environment must map names to strings.")
    if len(value) > MAX_ENVIRONMENT_KEYS:
        raise SpecError("spec.environment", f"At most {MAX_ENVIRONMENT_KEYS} variables.")
    total = 0
    for name, text in value.items():
        where = f"spec.environment.{name}" if isinstance(name, str) and len(name) <= 64 else (
            "spec.environment")
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name) or len(name) > 255:
            raise SpecError(where, "Variable names match [A-Za-z_][A-Za-z0-9_]*.")
        if name.upper().startswith(RESERVED_ENV_PREFIX):
            raise SpecError(where, f"Names starting with {RESERVED_ENV_PREFIX} are reserved.")
        if not isinstance(text, str):
            raise SpecError(where, "Values must be strings.")
        if "\x00" in text or "\n" in text or "\r" in text:
            raise SpecError(where, "Values must not contain NUL or newline characters.")
        total += len(name.encode()) + len(text.encode()) + 1
    if total > MAX_ENVIRONMENT_BYTES:
        raise SpecError("spec.environment", "The environment is larger than 32 KiB.")
    return dict(value)


def _simulated(value: Any) -> SimulatedSpec:
    if not isinstance(value, dict):
        raise SpecError("spec.simulate", 'simulate must be an object like {"seconds": 30}.')
    seconds = value.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
        0 <= seconds <= MAX_SIMULATED_S
    ):
        raise SpecError("spec.simulate.seconds", f"A number from 0 to {MAX_SIMULATED_S}.")
    rate = value.get("ai_tokens_per_second") or 0
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 10**9:
        raise SpecError("spec.simulate.ai_tokens_per_second", "A number from 0 to 10^9.")
    exit_code = value.get("exit_code")
    if exit_code is not None and (
        isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 0 <= exit_code <= 255
    ):
        raise SpecError("spec.simulate.exit_code", "A whole number from 0 to 255.")
    return SimulatedSpec(
        seconds=float(seconds),
        ai_tokens_per_second=float(rate),
        fail=bool(value.get("fail", False)),
        exit_code=exit_code,
    )


def spec_check(spec: Any) -> CommandSpec | SimulatedSpec:
    """The spec, checked and parsed; ``SpecError`` names the first field at fault."""
    if not isinstance(spec, dict) or not spec:
        raise SpecError("spec", "The spec must be an object with a command or a simulate block.")
    unknown = sorted(str(key) for key in spec if key not in SPEC_KEYS)
    if unknown:
        raise SpecError(f"spec.{unknown[0][:64]}", f"Unknown field; known: {sorted(SPEC_KEYS)}.")
    if len(json.dumps(spec)) > MAX_SPEC_BYTES:
        raise SpecError("spec", "The spec is larger than 64 KiB.")
    if "simulate" in spec:
        extra = sorted(set(spec) - {"simulate"})
        if extra:
            raise SpecError(f"spec.{extra[0]}", "A simulated run takes no command settings.")
        return _simulated(spec["simulate"])
    if "command" not in spec:
        raise SpecError("spec.command", "The spec needs a command (or a simulate block).")
    argv = _command(spec["command"])
    image = spec.get("image")
    network = spec.get("network", "none")
    if network not in NETWORKS:
        raise SpecError("spec.network", f"The network is one of {', '.join(NETWORKS)}.")
    return CommandSpec(
        argv=argv,
        image=None if image is None else image_parse(image),
        environment=_environment(spec.get("environment")),
        network=network,
    )


def spec_network(spec: Any) -> str:
    """The network a (checked) spec asks for: what placement matches nodes on."""
    if isinstance(spec, dict) and "command" in spec:
        return str(spec.get("network") or "none")
    return "none"


def spec_runs_command(spec: Any) -> bool:
    """A command spec needs a node that may run it; a simulated one runs anywhere."""
    return isinstance(spec, dict) and "simulate" not in spec
