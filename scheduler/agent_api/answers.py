"""What the agent API's fast paths answer, in the API's one error shape: the same bodies
and headers DRF gives for the same refusals."""

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
