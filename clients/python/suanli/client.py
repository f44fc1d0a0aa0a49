"""A typed client of the Suanli API (v1) for buyers: httpx, nothing else."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, TypedDict, cast

import httpx

TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled"})


class ApiError(Exception):
    """The API's refusal: its status, machine-readable code and message."""

    def __init__(self, status: int, code: str, message: str,
                 fields: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}


class LogPiece(TypedDict):
    attempt: int
    offset: int
    next_offset: int
    size: int
    ended: bool
    purged: bool
    text: str


class OutputFile(TypedDict):
    name: str
    size: int
    sha256: str
    state: str
    error: str
    url: str | None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    raise ApiError(response.status_code, str(error.get("code") or f"http_{response.status_code}"),
                   str(error.get("message") or response.reason_phrase),
                   error.get("fields") if isinstance(error.get("fields"), dict) else None)


class Client:
    def __init__(self, *, server: str, api_key: str, timeout_s: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.server}/api/v1",
                                  headers={"Authorization": f"Api-Key {api_key}",
                                           "Accept": "application/json",
                                           "User-Agent": "suanli-client/0.1"},
                                  timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params={k: v for k, v in params.items()
                                                if v is not None})
        _raise_for(response)
        return response.json()

    def _post(self, path: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Any:
        response = self._http.post(path, json=body or {}, headers=headers)
        _raise_for(response)
        return response.json() if response.content else None

    # catalog and wallet
    def gpu_classes(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._get("/gpu-classes/"))

    def wallet(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._get("/wallet/"))

    # jobs
    def submit_job(self, *, gpu: str, gpus: int = 1, command: list[str] | str,
                   image: str | None = None, environment: dict[str, str] | None = None,
                   max_duration_s: int = 3600, idempotency_key: str | None = None,
                   ) -> dict[str, Any]:
        """Submit a job; the same `idempotency_key` (a new one by default) never submits
        twice, so a submit retried after a lost answer is safe."""
        spec: dict[str, Any] = {"command": command}
        if image:
            spec["image"] = image
        if environment:
            spec["environment"] = environment
        key = idempotency_key or f"suanli-cli-{uuid.uuid4()}"
        body = {"spec": spec, "gpu_class": gpu, "gpu_count": gpus,
                "max_duration_s": max_duration_s}
        return cast(dict[str, Any], self._post("/jobs/", body, {"Idempotency-Key": key}))

    def jobs(self, *, state: str | None = None) -> list[dict[str, Any]]:
        page = self._get("/jobs/", state=state)
        return cast(list[dict[str, Any]], page.get("results", page) if isinstance(page, dict)
                    else page)

    def job(self, job_id: int) -> dict[str, Any]:
        return cast(dict[str, Any], self._get(f"/jobs/{job_id}/"))

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        return cast(dict[str, Any], self._post(f"/jobs/{job_id}/cancel/"))

    def wait_job(self, job_id: int, *, timeout_s: float | None = None,
                 poll_s: float = 1.0) -> dict[str, Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']}")
            time.sleep(poll_s)

    # logs
    def logs(self, job_id: int, *, offset: int = 0, limit: int | None = None,
             attempt: int | None = None) -> LogPiece:
        return cast(LogPiece, self._get(f"/jobs/{job_id}/logs/", offset=offset, limit=limit,
                                        attempt=attempt))

    def read_log(self, job_id: int, *, attempt: int | None = None) -> Iterator[str]:
        """The whole log as it is now, in pieces."""
        offset = 0
        while True:
            piece = self.logs(job_id, offset=offset, attempt=attempt)
            if piece["text"]:
                yield piece["text"]
            offset = piece["next_offset"]
            attempt = attempt or piece["attempt"] or None
            if offset >= piece["size"] or not piece["text"]:
                return

    def follow_logs(self, job_id: int, *, offset: int = 0,
                    attempt: int | None = None) -> Iterator[str]:
        """New text as it is printed, until the run ends (server-sent events)."""
        params: dict[str, Any] = {"follow": 1, "offset": offset}
        if attempt:
            params["attempt"] = attempt
        with self._http.stream("GET", f"/jobs/{job_id}/logs/", params=params,
                               timeout=httpx.Timeout(30.0, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "log":
                    yield str(json.loads(line[6:])["text"])
                elif line.startswith("data: ") and event == "end":
                    return

    # outputs
    def outputs(self, job_id: int) -> list[OutputFile]:
        return cast(list[OutputFile], self._get(f"/jobs/{job_id}/outputs/"))

    def download_outputs(self, job_id: int, directory: Path, *, wait_s: float = 120.0,
                         ) -> list[Path]:
        """Every uploaded output into `directory` (paths kept), each checked against its
        sha256; waits up to `wait_s` for uploads still pending."""
        deadline = time.monotonic() + wait_s
        files = self.outputs(job_id)
        while any(f["state"] == "pending" for f in files) and time.monotonic() < deadline:
            time.sleep(1.0)
            files = self.outputs(job_id)
        written: list[Path] = []
        root = directory.resolve()
        for f in files:
            if f["state"] != "uploaded" or not f["url"]:
                continue
            relative = PurePosixPath(f["name"])
            if relative.is_absolute() or ".." in relative.parts:
                raise ApiError(0, "unsafe_name", f"refusing to write {f['name']!r}")
            target = root.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            partial = target.with_name(target.name + ".part")
            with httpx.stream("GET", f["url"], timeout=300.0, follow_redirects=True) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise_for(r)
                with open(partial, "wb") as out:
                    for block in r.iter_bytes():
                        digest.update(block)
                        out.write(block)
            if digest.hexdigest() != f["sha256"]:
                partial.unlink(missing_ok=True)
                raise ApiError(0, "checksum_mismatch", f"{f['name']}: sha256 differs")
            partial.replace(target)
            written.append(target)
        return written
