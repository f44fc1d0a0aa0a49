"""One error shape for every API failure: {"error": {"code", "message", "fields"}}."""

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import DomainError, ErrorCode

logger = logging.getLogger("suanli.api")


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message, "fields": fields or {}}}


def _flatten_detail(detail: Any) -> Any:
    if isinstance(detail, list):
        return [str(d) for d in detail]
    if isinstance(detail, dict):
        return {k: _flatten_detail(v) for k, v in detail.items()}
    return str(detail)


def validation_error_body(detail: Any) -> dict[str, Any]:
    """A serializer's errors as the error shape: code `invalid`, the first problem in the
    message, every problem by field."""
    flat = _flatten_detail(detail)
    fields = flat if isinstance(flat, dict) else {"non_field_errors": flat}
    first = next(iter(fields.values()), ["Invalid input."])
    message = first[0] if isinstance(first, list) and first else str(first)
    return error_body(ErrorCode.INVALID, f"Invalid input: {message}", fields)


SERVER_ERROR_MESSAGE = "Something went wrong on our side; it has been logged."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        set_rollback()
        retry_after = getattr(exc, "retry_after_s", None)  # a throttle's: when to come back
        if retry_after:
            headers["Retry-After"] = str(int(retry_after))
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status,
                        headers=headers)
    if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(error_body(ErrorCode.PAYLOAD_TOO_LARGE, _MESSAGES[413]), status=413)
    if isinstance(exc, Http404):
        return Response(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        if isinstance(exc, exceptions.ValidationError):
            return Response(validation_error_body(exc.detail), status=400, headers=headers)
        code_map = {
            exceptions.NotAuthenticated: ErrorCode.NOT_AUTHENTICATED,
            exceptions.AuthenticationFailed: ErrorCode.NOT_AUTHENTICATED,
            exceptions.PermissionDenied: ErrorCode.PERMISSION_DENIED,
            exceptions.NotFound: ErrorCode.NOT_FOUND,
            exceptions.Throttled: ErrorCode.THROTTLED,
            exceptions.ParseError: ErrorCode.INVALID,
            exceptions.UnsupportedMediaType: ErrorCode.INVALID,
            exceptions.MethodNotAllowed: ErrorCode.METHOD_NOT_ALLOWED,
            exceptions.NotAcceptable: ErrorCode.NOT_ACCEPTABLE,
        }
        code = next((c for cls, c in code_map.items() if isinstance(exc, cls)), exc.default_code)
        return Response(
            error_body(code, str(_flatten_detail(exc.detail))),
            status=exc.status_code,
            headers=headers,
        )
    logger.exception("Unhandled API error", exc_info=exc)
    return Response(
        error_body(ErrorCode.SERVER_ERROR, SERVER_ERROR_MESSAGE),
        status=500,
    )


def not_found_json(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode.NOT_FOUND, "Not found."), status=404)


# Headers a refusal's client needs to act on it, kept when the body is replaced.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
_CODES_BY_STATUS = {
    400: ErrorCode.INVALID,
    401: ErrorCode.NOT_AUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.THROTTLED,
}
_MESSAGES = {
    404: "Not found.",
    405: "This method is not allowed here.",
    413: "The request body is larger than the server accepts.",
}


class JsonErrorsUnderApi:
    """Every failure under /api/ answers in the error shape, also those Django answers
    before any API view runs (an unmatched path, a body refused, an unhandled error in a
    middleware): without this they would be the storefront's HTML pages, which an API
    client cannot read a code from."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.status_code < 400 or not request.path.startswith("/api/"):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return api_error_response(response.status_code, response)


def api_error_response(status: int, original: HttpResponseBase | None = None) -> JsonResponse:
    """The error shape for a bare status, with the headers of `original` a client needs."""
    if status >= 500:
        code, message = ErrorCode.SERVER_ERROR, SERVER_ERROR_MESSAGE
    else:
        code = _CODES_BY_STATUS.get(status, ErrorCode.INVALID)
        message = _MESSAGES.get(status, f"{HTTPStatus(status).phrase}.")
    response = JsonResponse(error_body(code, message), status=status)
    for header in _KEPT_HEADERS:
        if original is not None and original.has_header(header):
            response[header] = original[header]
    return response
