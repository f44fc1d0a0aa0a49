"""A run's outputs: the files its job wrote under /suanli/outputs, declared to the server
(names, sizes, sha256) before the run's final report and uploaded after it through the
signed URLs the server answers with, so that upload time is never billed and the node
never holds storage credentials. Kept on disk until uploaded, across agent restarts.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx

from suanli_agent.client import AgentClient, AgentClientError, ApiError, Backoff
from suanli_agent.logs import spool_directory

UPLOAD_ATTEMPTS = 6


def outputs_directory(state_directory: Path | None, assignment_id: int) -> Path:
    return spool_directory(state_directory).parent / "outputs" / f"assignment-{assignment_id}"


def scan(directory: Path) -> list[dict[str, Any]]:
    """Regular files under ``directory`` (links are not followed), by relative name."""
    files: list[dict[str, Any]] = []
    if not directory.is_dir():
        return files
    for path in sorted(directory.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(block)
        files.append({"name": path.relative_to(directory).as_posix(),
                      "size": path.stat().st_size, "sha256": digest.hexdigest()})
    return files


class OutputUploader:
    def __init__(self, *, client: AgentClient, assignment_id: int, directory: Path,
                 log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 30.0,
                 timeout_s: float = 300.0) -> None:
        self.client = client
        self.assignment_id = assignment_id
        self.directory = directory
        self.log = log
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.timeout_s = timeout_s
        self.tickets: list[dict[str, Any]] = []
        self.uploaded: list[str] = []
        self.failed: list[str] = []

    def declare(self, *, stop: threading.Event) -> bool:
        """Ask for the upload URLs; False when there is nothing to upload."""
        files = scan(self.directory)
        if not files:
            return False
        backoff = Backoff(base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
        while not stop.is_set():
            try:
                self.tickets = self.client.outputs_request(self.assignment_id, files)
                return True
            except ApiError as error:
                if not error.retryable:
                    self.log.warning("outputs of assignment %s refused: %s", self.assignment_id,
                                     error)
                    self.discard()
                    return False
            except AgentClientError as error:
                self.log.warning("outputs of assignment %s not declared (%s), retrying",
                                 self.assignment_id, error)
            stop.wait(backoff.next_delay())
        return False

    def upload(self, *, stop: threading.Event) -> None:
        with httpx.Client(timeout=self.timeout_s) as http:
            for ticket in self.tickets:
                name = str(ticket["name"])
                error = self._put_with_retries(http, ticket, stop)
                if stop.is_set():
                    return  # kept on disk; the next start declares and uploads again
                self._report(name, error, stop)
        if not stop.is_set():
            self.discard()

    def _put_with_retries(self, http: httpx.Client, ticket: dict[str, Any],
                          stop: threading.Event) -> str:
        path = self.directory / str(ticket["name"])
        backoff = Backoff(base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
        last = ""
        for _ in range(UPLOAD_ATTEMPTS):
            try:
                size = path.stat().st_size
                headers = {**{str(k): str(v) for k, v in (ticket.get("headers") or {}).items()},
                           "Content-Length": str(size)}
                with open(path, "rb") as handle:
                    response = http.request(str(ticket.get("method") or "PUT"),
                                            str(ticket["url"]), content=handle, headers=headers)
                if response.status_code < 300:
                    return ""
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    return last
            except (OSError, httpx.HTTPError) as error:
                last = f"{type(error).__name__}: {error}"
            self.log.warning("upload of %s for assignment %s failed (%s), retrying",
                             ticket["name"], self.assignment_id, last)
            if stop.wait(backoff.next_delay()):
                return last
        return last

    def _report(self, name: str, error: str, stop: threading.Event) -> None:
        backoff = Backoff(base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
        while not stop.is_set():
            try:
                self.client.output_report(self.assignment_id, name=name, ok=not error,
                                          error=error)
                break
            except ApiError as refused:
                if not refused.retryable:
                    self.log.warning("output %s of assignment %s: %s", name,
                                     self.assignment_id, refused)
                    error = error or str(refused)
                    break
            except AgentClientError:
                pass
            stop.wait(backoff.next_delay())
        (self.failed if error else self.uploaded).append(name)

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
