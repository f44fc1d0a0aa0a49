"""What the agent API's fast paths answer, in the API's one error shape: the same bodies
and headers DRF gives for the same refusals."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.api_errors import error_body
from core.errors import ErrorCode


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def unauthenticated(message: str) -> Answer:
    return Answer(401, error_body(ErrorCode.NOT_AUTHENTICATED, message),
                  {"WWW-Authenticate": "Node"})


def throttled(retry_after_s: int | None) -> Answer:
    """DRF's Throttled, word for word."""
    if retry_after_s is None:
        return Answer(429, error_body(ErrorCode.THROTTLED, "Request was throttled."))
    unit = "second" if retry_after_s == 1 else "seconds"
    return Answer(429, error_body(
        ErrorCode.THROTTLED,
        f"Request was throttled. Expected available in {retry_after_s} {unit}.",
    ), {"Retry-After": str(retry_after_s)} if retry_after_s else {})


async def body_read(headers: dict[bytes, str], receive: Callable[[], Awaitable[dict[str, Any]]],
                    limit: int, too_large: Callable[[], Answer]) -> bytes | Answer:
    """A request's body from the ASGI channel, at most `limit` bytes: a declared length
    past it is refused unread, a streamed one as soon as it passes it, so no stranger
    makes the door hold more than `limit` in memory."""
    try:
        length = int(headers.get(b"content-length") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= limit:
        return too_large()
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return Answer(400, error_body(ErrorCode.INVALID, "The request ended early."))
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            return too_large()
    return body
