"""The API's schema says how each operation refuses, not only how it succeeds: every
operation documents its 4xx answers in the one error shape (core.api_errors), with the
codes each status carries, so that a client (and the fuzzer in the suite) can tell a
refusal the server meant from one it did not."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import permissions

from core.errors import DomainError, ErrorCode

ERROR_COMPONENT = "Error"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every failure of the API, whatever its status.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "machine-readable, stable"},
                "message": {"type": "string", "description": "for a person to act on"},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "the problems by field, for a refused input",
                },
            },
            "required": ["code", "message", "fields"],
        },
    },
    "required": ["error"],
}

# What each status means here, and the shared codes that come with it; the apps' own
# codes are added from their DomainError subclasses (see error_codes_by_status).
_STATUSES: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("The input was refused (a field out of bounds, malformed, or not allowed now).",
          (ErrorCode.INVALID, ErrorCode.OUT_OF_BOUNDS)),
    401: ("No credentials, or credentials that are not valid.",
          (ErrorCode.NOT_AUTHENTICATED,)),
    402: ("Not enough tokens for this.", ()),
    403: ("The credentials may not do this.", (ErrorCode.PERMISSION_DENIED,)),
    404: ("No such object for the caller (or none yet), or a cursor that is not one of ours.",
          (ErrorCode.NOT_FOUND,)),
    409: ("The object is not in a state that allows this now.", (ErrorCode.CONFLICT,)),
    413: ("The request body is larger than the server accepts.",
          (ErrorCode.PAYLOAD_TOO_LARGE,)),
    429: ("Too many requests, or too many failed credentials from this address; "
          "Retry-After says when to come back.", (ErrorCode.THROTTLED,)),
    503: ("The server cannot do this now; try again later or without the option.", ()),
}

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    stack = list(cls.__subclasses__())
    while stack:
        sub = stack.pop()
        found.append(sub)
        stack.extend(sub.__subclasses__())
    return found


def error_codes_by_status() -> dict[int, list[str]]:
    """Every code a status carries: the shared ones and those of each domain error class
    loaded (all of them once the URLconf is, which the schema's generation needs)."""
    codes: dict[int, set[str]] = {status: {str(c) for c in shared}
                                  for status, (_, shared) in _STATUSES.items()}
    for sub in _subclasses(DomainError):
        codes.setdefault(int(sub.status), set()).add(str(sub.code))
    return {status: sorted(found) for status, found in codes.items()}


class ErrorDocumentingAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with each operation's error answers added: the
    statuses its view can refuse with, each in the error shape with its codes."""

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return operation
        self.registry.register_on_missing(ResolvedComponent(
            name=ERROR_COMPONENT, type=ResolvedComponent.SCHEMA, object=ERROR_COMPONENT,
            schema=ERROR_SCHEMA))
        codes = error_codes_by_status()
        responses = operation.setdefault("responses", {})
        for status in self.error_statuses(operation):
            description, _ = _STATUSES.get(status, ("Refused.", ()))
            listed = ", ".join(f"`{c}`" for c in codes.get(status, []))
            responses.setdefault(str(status), {
                "description": f"{description} Codes: {listed}." if listed else description,
                "content": {"application/json": {"schema": {
                    "$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
            })
        return operation

    def error_statuses(self, operation: dict[str, Any]) -> list[int]:
        """The refusals this operation can answer. Everything can be throttled and can
        be refused a malformed credential; what else depends on its input and door (a
        view adds its own in `schema_error_statuses`)."""
        statuses = {400, 401, 404, 429}  # 404: the object named, or the caller's own one
        if not self._allows_anyone():
            statuses.add(403)
        if self.method in _WRITES:
            statuses |= {402, 409, 413}
        statuses |= set(getattr(self.view, "schema_error_statuses", ()))
        return sorted(statuses)

    def _allows_anyone(self) -> bool:
        try:
            return any(isinstance(p, permissions.AllowAny) for p in self.view.get_permissions())
        except Exception:  # a view whose permissions need a real request
            return False

