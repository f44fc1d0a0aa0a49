"""HTTP access to the agent API, the error types the agent acts on, and retry backoff."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from suanli_agent import AGENT_VERSION

# Seconds an idle connection to the server is kept for the next call.
KEEPALIVE_S = 60.0

JsonDict = dict[str, Any]
T = TypeVar("T")

# Answers worth trying again later: the server is busy, restarting or behind a proxy.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class AgentClientError(Exception):
    """A call that did not succeed; ``retryable`` says whether trying again may help."""

    retryable: bool = True


class ServerUnreachable(AgentClientError):
    """No HTTP answer at all: connection refused or reset, timeout, broken response."""

    retryable = True


@dataclass
class ApiError(AgentClientError):
    """The server answered with a 4xx or 5xx in the shared error shape."""

    status: int
    code: str
    message: str
    fields: JsonDict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.message}")
        self.retryable = self.status >= 500 or self.status in RETRYABLE_STATUSES

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class Backoff:
    """Exponential backoff with jitter: base, 2*base, 4*base ... capped, each scaled by a
    random factor in [0.5, 1] so a fleet of agents does not retry in lockstep."""

    def __init__(self, *, base_s: float = 1.0, cap_s: float = 30.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempts = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2.0**self.attempts))
        self.attempts = min(self.attempts + 1, 32)
        return ceiling * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0


def retry_until_answered(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    stop: threading.Event,
    on_retry: Callable[[AgentClientError, float], None],
) -> T | None:
    """Call until it returns or raises a final (non-retryable) error.

    Returns None only if ``stop`` is set first. Final ``ApiError``s are raised.
    """
    while not stop.is_set():
        try:
            result = call()
        except AgentClientError as error:
            if not error.retryable:
                raise
            delay = backoff.next_delay()
            on_retry(error, delay)
            stop.wait(delay)
            continue
        backoff.reset()
        return result
    return None


def _error_from_response(response: httpx.Response) -> ApiError:
    code = f"http_{response.status_code}"
    message = response.reason_phrase or "error"
    fields: JsonDict = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        if isinstance(error.get("fields"), dict):
            fields = error["fields"]
    return ApiError(status=response.status_code, code=code, message=message, fields=fields)


class _JsonClient:
    def __init__(self, *, server: str, authorization: str, timeout_s: float) -> None:
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={
                "Authorization": authorization,
                "User-Agent": f"suanli-agent/{AGENT_VERSION}",
                "Accept": "application/json",
            },
            timeout=timeout_s,
            # A connection kept past the beat interval (httpx drops an idle one after 5 s,
            # so each 10 s beat paid a new connection); below the agents' server's own
            # keep-alive (docker/compose.yaml), so the server never closes one first.
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S),
        )

    def post(self, path: str, body: JsonDict, *, timeout_s: float | None = None,
             params: dict[str, Any] | None = None) -> JsonDict:
        try:
            response = self._http.post(
                path, json=body, params=params,
                timeout=self._http.timeout if timeout_s is None else timeout_s,
            )
        except httpx.TransportError as error:
            raise ServerUnreachable(f"{type(error).__name__}: {error}".rstrip(": ")) from error
        if response.status_code >= 400:
            raise _error_from_response(response)
        try:
            data = response.json()
        except ValueError as error:
            raise ServerUnreachable(
                f"unreadable answer to {path} (status {response.status_code})"
            ) from error
        if not isinstance(data, dict):
            raise ServerUnreachable(f"unexpected answer to {path}: {data!r:.200}")
        return data

    def post_bytes(self, path: str, data: bytes, params: dict[str, Any]) -> JsonDict:
        try:
            response = self._http.post(path, content=data, params=params,
                                       headers={"Content-Type": "application/octet-stream"})
        except httpx.TransportError as error:
            raise ServerUnreachable(f"{type(error).__name__}: {error}".rstrip(": ")) from error
        if response.status_code >= 400:
            raise _error_from_response(response)
        try:
            answer = response.json()
        except ValueError as error:
            raise ServerUnreachable(f"unreadable answer to {path}") from error
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        self._http.close()


class ProviderClient(_JsonClient):
    """Calls made with a provider's API key: registering nodes."""

    def __init__(self, *, server: str, api_key: str, timeout_s: float = 10.0) -> None:
        super().__init__(server=server, authorization=f"Api-Key {api_key}", timeout_s=timeout_s)

    def register_node(
        self,
        *,
        name: str,
        gpu_class: str,
        gpu_count: int,
        vram_gb: int,
        region: str,
        labels: dict[str, str] | None = None,
    ) -> JsonDict:
        return self.post(
            "/api/v1/nodes/",
            {
                "name": name,
                "gpu_class": gpu_class,
                "gpu_count": gpu_count,
                "vram_gb": vram_gb,
                "region": region,
                "labels": labels or {},
            },
        )


class AgentClient(_JsonClient):
    """Calls made with a node token: the agent API. Safe to share between threads."""

    def __init__(self, *, server: str, token: str, timeout_s: float = 10.0) -> None:
        super().__init__(server=server, authorization=f"Node {token}", timeout_s=timeout_s)

    def heartbeat(self, body: JsonDict) -> JsonDict:
        return self.post("/api/v1/agent/heartbeat/", body)

    def lease(self) -> JsonDict:
        return self.post("/api/v1/agent/lease/", {})

    def lease_wait(self, seconds: int) -> JsonDict:
        """The lease once it changes, or ``{"changed": false}`` after ``seconds``."""
        return self.post("/api/v1/agent/lease/", {}, params={"wait": seconds},
                         timeout_s=seconds + self._http.timeout.read if
                         self._http.timeout.read else None)

    def usage(self, assignment_id: int, *, seq: int, gpu_seconds: int, ai_tokens: int,
              extra: JsonDict | None = None) -> JsonDict:
        """``extra``: the image and digest the run started from, said once."""
        return self.post(
            f"/api/v1/agent/assignments/{assignment_id}/usage/",
            {"seq": seq, "gpu_seconds": gpu_seconds, "ai_tokens": ai_tokens, **(extra or {})},
        )

    def finish(self, assignment_id: int, *, kind: str, body: JsonDict) -> JsonDict:
        """``kind`` is ``complete`` or ``fail``; ``body`` is that endpoint's body."""
        if kind not in ("complete", "fail"):
            raise ValueError(f"unknown final report {kind!r}")
        return self.post(f"/api/v1/agent/assignments/{assignment_id}/{kind}/", body)

    def log_chunk(self, assignment_id: int, *, offset: int, data: bytes) -> JsonDict:
        return self.post_bytes(f"/api/v1/agent/assignments/{assignment_id}/logs/", data,
                               {"offset": offset})

    def outputs_request(self, assignment_id: int, files: list[JsonDict]) -> list[JsonDict]:
        answer = self.post(f"/api/v1/agent/assignments/{assignment_id}/outputs/",
                           {"files": files})
        return list(answer.get("results", []))

    def output_report(self, assignment_id: int, *, name: str, ok: bool,
                      error: str = "") -> JsonDict:
        return self.post(f"/api/v1/agent/assignments/{assignment_id}/outputs/report/",
                         {"name": name, "ok": ok, "error": error[:500]})
