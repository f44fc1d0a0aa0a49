"""A small in-process server speaking the agent HTTP contract, recording every call.

It keeps just enough state to behave like the real one: registered nodes and their
tokens, active assignments per node, kill orders, usage by sequence number, and closed
assignments (409 ``assignment_closed``). It can answer 503 to everything or stop
listening altogether, then come back on the same port.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROVIDER_KEY = "provider-key-1"


@dataclass
class Call:
    path: str
    authorization: str
    body: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)


class FakeAgentServer:
    def __init__(self, *, next_heartbeat_s: int = 1) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.next_heartbeat_s = next_heartbeat_s
        self.node_tokens: dict[str, int] = {}
        self.assignments: dict[int, dict[str, Any]] = {}  # id -> lease json
        self.owner: dict[int, int] = {}  # assignment id -> node id
        self.kill: dict[int, set[int]] = {}  # node id -> assignment ids to kill
        self.closed: set[int] = set()
        self.stop_on_usage: set[int] = set()
        self.usage: dict[int, list[dict[str, Any]]] = {}
        self.completed: dict[int, list[dict[str, Any]]] = {}
        self.failed: dict[int, list[dict[str, Any]]] = {}
        self.unavailable = False  # answer 503 to everything
        self.pending_nodes: set[int] = set()  # not approved: heartbeat ok, lease refused
        # Lease hints, as the real server gives them with write-behind: a beat's answer
        # says `lease_due` when work was added or ordered killed since the last lease.
        self.hints = False
        self.lease_due: set[int] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0

    # -- control from tests -----------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                auth = self.headers.get("Authorization", "")
                status, answer = server.handle(self.path, auth, body)
                with server.lock:
                    server.calls.append(Call(self.path, auth, body, status))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def go_down(self) -> None:
        """Stop listening: the agent sees connection refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def come_back(self) -> None:
        self.start()

    def register_token(self, token: str, node_id: int) -> None:
        with self.lock:
            self.node_tokens[token] = node_id

    def add_assignment(
        self,
        node_id: int,
        assignment_id: int,
        *,
        spec: dict[str, Any],
        gpu_count: int = 1,
        job_id: int | None = None,
        max_duration_s: int = 3600,
    ) -> None:
        expires = datetime.now(UTC) + timedelta(minutes=5)
        with self.lock:
            self.assignments[assignment_id] = {
                "id": assignment_id,
                "job_id": job_id if job_id is not None else assignment_id + 1000,
                "gpu_count": gpu_count,
                "spec": spec,
                "max_duration_s": max_duration_s,
                "lease_expires_at": expires.isoformat(),
            }
            self.owner[assignment_id] = node_id
            self.lease_due.add(node_id)

    def order_kill(self, assignment_id: int) -> None:
        with self.lock:
            self.assignments.pop(assignment_id, None)
            node_id = self.owner[assignment_id]
            self.kill.setdefault(node_id, set()).add(assignment_id)
            self.closed.add(assignment_id)
            self.lease_due.add(node_id)

    def calls_to(self, suffix: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path.endswith(suffix)]

    def usage_of(self, assignment_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.usage.get(assignment_id, []))

    # -- the contract -----------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"code": code, "message": message, "fields": {}}}

    def handle(self, path: str, auth: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.unavailable:
            return self._error(503, "unavailable", "down for maintenance")
        with self.lock:
            if path == "/api/v1/nodes/":
                if auth != f"Api-Key {PROVIDER_KEY}":
                    return self._error(401, "not_authenticated", "bad API key")
                node_id = len(self.node_tokens) + 1
                token = secrets.token_urlsafe(16)
                self.node_tokens[token] = node_id
                return 201, {**body, "id": node_id, "status": "online", "token": token}
            scheme, _, token = auth.partition(" ")
            if scheme != "Node" or token not in self.node_tokens:
                return self._error(401, "not_authenticated", "bad node token")
            node_id = self.node_tokens[token]
            if path == "/api/v1/agent/heartbeat/":
                beat = {
                    "status": "pending" if node_id in self.pending_nodes else "online",
                    "next_heartbeat_s": self.next_heartbeat_s,
                    "server_time": datetime.now(UTC).isoformat(),
                }
                if self.hints:
                    beat["lease_due"] = node_id in self.lease_due
                return 200, beat
            if path == "/api/v1/agent/lease/":
                if node_id in self.pending_nodes:
                    return self._error(403, "node_not_online", "node is pending approval")
                self.lease_due.discard(node_id)
                mine = [a for i, a in self.assignments.items() if self.owner[i] == node_id]
                kill = sorted(self.kill.pop(node_id, set()))
                return 200, {"assignments": mine, "kill": kill}
            parts = path.strip("/").split("/")
            # api v1 agent assignments <id> <action>
            if len(parts) == 6 and parts[3] == "assignments":
                assignment_id, action = int(parts[4]), parts[5]
                if assignment_id in self.closed or self.owner.get(assignment_id) != node_id:
                    return self._error(409, "assignment_closed", "assignment is closed")
                if action == "usage":
                    seen = self.usage.setdefault(assignment_id, [])
                    accepted = not seen or body["seq"] > seen[-1]["seq"]
                    if accepted:
                        seen.append(body)
                    stop = assignment_id in self.stop_on_usage
                    return 200, {
                        "accepted": accepted,
                        "action": "stop" if stop else "continue",
                        "lease_expires_at": self.assignments[assignment_id]["lease_expires_at"],
                    }
                if action in ("complete", "fail"):
                    target = self.completed if action == "complete" else self.failed
                    target.setdefault(assignment_id, []).append(body)
                    self.assignments.pop(assignment_id, None)
                    self.closed.add(assignment_id)
                    return 200, {"status": "succeeded" if action == "complete" else "failed"}
        return self._error(404, "not_found", path)


def wait_for(predicate: Any, *, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
