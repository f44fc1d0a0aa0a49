"""Logs in the event loop of the agents' ASGI server (config.asgi), in front of Django:
agents' chunks (`POST agent/assignments/{id}/logs/`, scheduler.agent_api.log_chunk: every
running job's node every 2 s), and `GET /api/v1/jobs/{id}/logs/?follow=1`, where a
follower waits between looks without holding a thread, so many buyers can follow their
runs at once. Each look (authenticate once, then read new bytes) runs on
the database threads and returns at once. Under WSGI the DRF view answers the same URL
with the same events (scheduler.api.objects.JobLogsApi), holding a worker per follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from urllib.parse import parse_qs

from django.conf import settings

from banking.services.customers import api_key_authenticate
from core.api_errors import SERVER_ERROR_MESSAGE, error_body
from core.bounds import digits_value
from core.errors import ErrorCode
from core.observability import LATENCY, REQUESTS, request_id_var
from scheduler.agent_api import log_chunk
from scheduler.agent_api.answers import Answer, body_read
from scheduler.agent_api.database_threads import on_a_database_thread
from scheduler.agent_api.doors import (
    ASGIApp,
    ASGIReceive,
    ASGIScope,
    ASGISend,
    _reply,
    _request_id,
)
from scheduler.api.objects import follow_step, slice_json, sse_event
from scheduler.models import Job

PATH = re.compile(r"^/api/v1/jobs/(\d{1,18})/logs/$")
CHUNK_ROUTE = "api/v1/agent/assignments/<id>/logs/"
logger = logging.getLogger("suanli.request")


def _job_visible(authorization: str, job_id: int) -> int:
    """200, 401 or 404 for this caller and job."""
    scheme, _, raw = authorization.partition(" ")
    key = api_key_authenticate(raw) if scheme == "Api-Key" else None
    if key is None:
        return 401
    return 200 if Job.objects.filter(pk=job_id, organization_id=key.organization_id).exists() \
        else 404


class LogDoorsASGI:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            chunk = log_chunk.PATH.match(scope.get("path", ""))
            if chunk is not None:
                await self._chunk(scope, receive, send, int(chunk.group(1)))
                return
        match = PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        # Session-authenticated pages poll instead; only API keys follow here.
        if (match is None or scope["method"] != "GET"
                or query.get("follow", [""])[0] not in ("1", "true")
                or not headers.get(b"authorization", "").startswith("Api-Key ")):
            await self.app(scope, receive, send)
            return
        job_id = int(match.group(1))
        attempt_raw = query.get("attempt", [""])[0]
        offset_raw = query.get("offset", ["0"])[0] or "0"
        if (digits_value(offset_raw, most=18) is None
                or (attempt_raw and digits_value(attempt_raw, most=5) is None)):
            await self._error(send, 400, ErrorCode.INVALID, "offset and attempt are whole numbers.")
            return
        status = await on_a_database_thread(_job_visible, headers[b"authorization"], job_id)
        if status != 200:
            code = ErrorCode.NOT_AUTHENTICATED if status == 401 else ErrorCode.NOT_FOUND
            await self._error(send, status, code,
                              "Invalid or revoked API key." if status == 401 else "Job not found.")
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"),
                                (b"cache-control", b"no-cache")]})
        disconnected = asyncio.Event()
        watcher = asyncio.ensure_future(self._watch(receive, disconnected))
        try:
            await self._stream(send, job_id, int(attempt_raw) if attempt_raw else None,
                               int(offset_raw), disconnected)
        finally:
            watcher.cancel()

    @staticmethod
    async def _chunk(scope: ASGIScope, receive: ASGIReceive, send: ASGISend,
                     assignment_id: int) -> None:
        started = time.perf_counter()
        headers = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = _request_id(headers.get(b"x-request-id", ""))
        reset = request_id_var.set(rid)
        try:
            answer = await LogDoorsASGI._chunk_answer(scope, receive, headers, assignment_id)
            payload, reply_headers = _reply(answer, rid)
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(k.lower().encode(), v.encode("latin-1"))
                                    for k, v in reply_headers]})
            await send({"type": "http.response.body", "body": payload})
            elapsed = time.perf_counter() - started
            REQUESTS.labels("POST", CHUNK_ROUTE, answer.status).inc()
            LATENCY.labels("POST", CHUNK_ROUTE).observe(elapsed)
            logger.info("POST %s %s %.1fms", scope.get("path", ""), answer.status,
                        elapsed * 1000, extra={"request_id": rid})
        finally:
            request_id_var.reset(reset)

    @staticmethod
    async def _chunk_answer(scope: ASGIScope, receive: ASGIReceive,
                            headers: dict[bytes, str], assignment_id: int) -> Answer:
        body = await body_read(headers, receive, settings.LOG_CHUNK_MAX_BYTES,
                               log_chunk.too_large)
        if isinstance(body, Answer):
            return body
        offset = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("offset", [None])[0]
        try:
            return await on_a_database_thread(log_chunk.log_chunk_answer,
                                              headers.get(b"authorization", ""), assignment_id,
                                              offset, body)
        except Exception:  # an answer in the API's shape, whatever went wrong
            logger.exception("Unhandled error in the log chunk door")
            return Answer(500, error_body("server_error", SERVER_ERROR_MESSAGE))

    @staticmethod
    async def _watch(receive: ASGIReceive, disconnected: asyncio.Event) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected.set()

    @staticmethod
    async def _stream(send: ASGISend, job_id: int, attempt: int | None, offset: int,
                      disconnected: asyncio.Event) -> None:
        while not disconnected.is_set():
            piece, done = await on_a_database_thread(follow_step, job_id=job_id,
                                                     attempt=attempt, offset=offset)
            if piece.data:
                await send({"type": "http.response.body", "body": sse_event("log",
                            slice_json(piece)), "more_body": True})
                offset = piece.next_offset
                attempt = attempt or piece.attempt or None
                continue
            if done:
                await send({"type": "http.response.body", "body": sse_event(
                    "end", {"next_offset": offset, "attempt": piece.attempt})})
                return
            await send({"type": "http.response.body", "body": b": keep-alive\n\n",
                        "more_body": True})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(disconnected.wait(), settings.LOG_FOLLOW_POLL_S)
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _error(send: ASGISend, status: int, code: str, message: str) -> None:
        payload = json.dumps(error_body(code, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
