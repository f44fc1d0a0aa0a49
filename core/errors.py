"""The error kernel. Services raise `DomainError`s; the API's one exception handler
(core.api_errors) renders them as `{"error": {"code", "message", "fields"}}`. Each app
keeps its own codes in its `error_codes.py` and subclasses these."""

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Codes every app shares: the API's own refusals and the generic domain ones."""

    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PERMISSION_DENIED = "permission_denied"
    NOT_AUTHENTICATED = "not_authenticated"
    THROTTLED = "throttled"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    OUT_OF_BOUNDS = "out_of_bounds"
    SERVER_ERROR = "server_error"


class DomainError(Exception):
    """An expected failure a caller can act on. `status` is the HTTP status it maps to."""

    code: str = ErrorCode.INVALID
    status: int = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields or {}


class InvalidInput(DomainError):
    code: str = ErrorCode.INVALID
    status = 400


class NotFound(DomainError):
    code: str = ErrorCode.NOT_FOUND
    status = 404


class Conflict(DomainError):
    code: str = ErrorCode.CONFLICT
    status = 409


class PermissionDenied(DomainError):
    code: str = ErrorCode.PERMISSION_DENIED
    status = 403
