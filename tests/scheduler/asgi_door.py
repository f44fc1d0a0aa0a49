"""A request through config.asgi.application, as a uvicorn worker would make it."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.utils.datastructures import CaseInsensitiveMapping

from config.asgi import application

Reply = tuple[int, dict[str, Any], dict[str, str]]


def through_asgi(authorization: str | None, body: bytes, headers: dict[str, str],
                 path: str = "/api/v1/agent/heartbeat/", method: str = "POST",
                 query: bytes = b"") -> Reply:
    # On a thread and event loop of its own, as in a server: the test's thread may run a
    # loop already (Playwright's, in the serial part of the suite).
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, asgi_request(authorization, body, headers, path,
                                                       method, query)).result()


async def asgi_request(authorization: str | None, body: bytes, headers: dict[str, str],
                       path: str = "/api/v1/agent/heartbeat/", method: str = "POST",
                       query: bytes = b"") -> Reply:
    """One request to the application in the running event loop (several may be in
    flight at once, as in one uvicorn worker)."""
    sent = {k.lower(): v for k, v in headers.items()}
    if authorization is not None:
        sent["authorization"] = authorization
    sent.update({"content-type": "application/json", "content-length": str(len(body))})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "server": ("testserver", 80),
             "client": ("127.0.0.1", 5000),
             "headers": [(k.encode(), v.encode()) for k, v in sent.items()]}
    # The body in two parts: the door reads to the end.
    parts = [{"type": "http.request", "body": body[:7], "more_body": True},
             {"type": "http.request", "body": body[7:], "more_body": False}]
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop(0)
        await asyncio.Event().wait()  # the client stays until answered (Django listens)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await application(scope, receive, send)
    start = messages[0]
    payload = b"".join(m.get("body", b"") for m in messages[1:])
    # ASGI names headers in lower case; HTTP's names are case-insensitive.
    named = CaseInsensitiveMapping({k.decode(): v.decode() for k, v in start["headers"]})
    return start["status"], json.loads(payload) if payload else {}, named  # type: ignore[return-value]
