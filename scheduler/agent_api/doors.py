"""The agents' hottest calls answered in front of Django: heartbeats (every node, every
few seconds; scheduler.agent_api.heartbeat) and lease reads (every node told of a change;
scheduler.agent_api.lease). `AgentFastPathASGI` wraps the agents' server only
(config.asgi, gunicorn with uvicorn workers) and serves these two URLs, as the URLconf
names them (scheduler.agent_api.paths), without Django's middleware, URL resolution and
DRF's request cycle, which cost several times the calls' own work (bench.agent_api;
docs/performance.md). The site's WSGI server has no such door: its DRF views answer the
same through the same functions. Every other request goes to Django.

They keep what Django's cycle gives every request that matters here: the database
connection's lifecycle (`close_old_connections`, as Django's request signals do), the
request id, the request log line and the Prometheus metrics, and the API's one error
shape, also for an unexpected failure.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from core.api_errors import SERVER_ERROR_MESSAGE, error_body
from core.errors import ErrorCode
from core.observability import LATENCY, REQUESTS, request_id_var
from scheduler.agent_api import heartbeat, lease, lease_push
from scheduler.agent_api.answers import Answer, body_read
from scheduler.agent_api.bodies import lease_wait_seconds
from scheduler.agent_api.database_threads import on_a_database_thread
from scheduler.agent_api.paths import agent_paths

logger = logging.getLogger("suanli.request")


def _request_id(incoming: str) -> str:
    return incoming[:64] if incoming and incoming.isascii() else uuid.uuid4().hex


def _reply(answer: Answer, rid: str) -> tuple[bytes, list[tuple[str, str]]]:
    payload = json.dumps(answer.body).encode()
    return payload, [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                     ("X-Content-Type-Options", "nosniff"), ("X-Request-ID", rid),
                     *answer.headers.items()]


def _observe(route: str, path: str, answer: Answer, rid: str, started: float) -> None:
    """What Django's request cycle would have done for the request: metrics, a log line."""
    elapsed = time.perf_counter() - started
    REQUESTS.labels("POST", route, answer.status).inc()
    LATENCY.labels("POST", route).observe(elapsed)
    logger.info("POST %s %s %.1fms", path, answer.status, elapsed * 1000,
                extra={"request_id": rid})


def _too_long() -> Answer:
    # The same refusal as Django's doors give an agent call past its cap
    # (core.request_bounds).
    limit = settings.AGENT_REQUEST_MAX_BYTES
    return Answer(413, error_body(ErrorCode.PAYLOAD_TOO_LARGE,
                                  f"The body must be at most {limit} bytes."))


def _failed() -> Answer:
    logger.exception("Unhandled error in the agents' fast path")
    return Answer(500, error_body("server_error", SERVER_ERROR_MESSAGE))


ASGIScope = dict[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]


class AgentFastPathASGI:
    """The door of the agents' server (config.asgi.application): one worker's event loop
    answers many agents at once while each heartbeat waits on Redis, where a synchronous
    worker answers one at a time; lease reads run on the database threads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        paths = agent_paths()
        self.lease_path = paths.lease
        self.routes = paths.routes

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.routes or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = _request_id(headers.get(b"x-request-id", ""))
        reset = request_id_var.set(rid)
        try:
            answer = await self._answer(path, headers, receive,
                                        scope.get("query_string", b"").decode("latin-1"))
            if answer is None:  # a lease wait whose agent hung up: nobody to answer
                return
            payload, reply_headers = _reply(answer, rid)
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(k.lower().encode(), v.encode("latin-1"))
                                    for k, v in reply_headers]})
            await send({"type": "http.response.body", "body": payload})
            _observe(self.routes[path], path, answer, rid, started)
        finally:
            request_id_var.reset(reset)

    async def _answer(self, path: str, headers: dict[bytes, str],
                      receive: ASGIReceive, query: str) -> Answer | None:
        authorization = headers.get(b"authorization", "")
        try:
            if path == self.lease_path:  # no body to read
                wait = lease_wait_seconds(query)
                if isinstance(wait, Answer):
                    return wait
                if wait is not None:
                    return await lease_push.lease_wait(authorization, wait, receive,
                                                       lease.lease_answer)
                return await on_a_database_thread(lease.lease_answer, authorization)
            body = await body_read(headers, receive, settings.AGENT_REQUEST_MAX_BYTES, _too_long)
            if isinstance(body, Answer):
                return body
            return await heartbeat.heartbeat_answer_async(authorization, body)
        except Exception:  # an answer in the API's shape, whatever went wrong
            return _failed()
