"""Request bodies are capped in bytes before anything parses them, and a JSON body is parsed
bounded in depth and size.

The cap is a Django middleware: config.wsgi and config.asgi (through a2wsgi) both hand every
request that is not an agent fast path to Django's WSGI handler, so this is the one place
both doors pass. It runs in `process_view`, after the URL is resolved and before any view or
middleware reads the body, so a view that bounds its own body (a log chunk, a signed upload)
is named in REQUEST_BODY_SELF_BOUNDED_VIEWS instead of being refused here.

A declared Content-Length over the cap is refused without reading a byte; a body without
one (chunked) is read in pieces up to one byte past the cap, never all of it, so what a
stranger sends costs at most the cap in memory."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.api_errors import error_body
from core.bounds import OutOfBounds
from core.errors import ErrorCode

# How much of a chunked body is read at a time while counting it against the cap.
_PIECE = 64 * 1024


def body_limit(path: str) -> int:
    """The cap for a request to `path`: agents' calls send small reports, the API more."""
    if path.startswith(settings.AGENT_API_PATH_PREFIX):
        return int(settings.AGENT_REQUEST_MAX_BYTES)
    return int(settings.API_REQUEST_MAX_BYTES)


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    # The rest of the body is left unread: the servers (gunicorn, uvicorn) close a
    # connection whose request they did not read to the end. Connection is hop-by-hop, a
    # header a WSGI application may not set (wsgiref, under runserver, refuses it).
    message = f"The request body must be at most {limit} bytes."
    if request.path_info.startswith("/api/"):
        return JsonResponse(error_body(ErrorCode.PAYLOAD_TOO_LARGE, message), status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


def _bad_length(request: HttpRequest) -> HttpResponse:
    message = "Content-Length must be a non-negative integer."
    if request.path_info.startswith("/api/"):
        return JsonResponse(error_body(ErrorCode.INVALID, message), status=400)
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


class RequestBodyLimitMiddleware:
    """413 `payload_too_large` for a body over its cap (body_limit), before it is read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any,
                     view_kwargs: Any) -> HttpResponse | None:
        match = request.resolver_match
        if match is not None and match.url_name in settings.REQUEST_BODY_SELF_BOUNDED_VIEWS:
            return None
        limit = body_limit(request.path_info)
        declared = request.META.get("CONTENT_LENGTH")
        if declared not in (None, ""):
            try:
                length = int(declared)
            except ValueError:
                return _bad_length(request)
            if length < 0:
                return _bad_length(request)
            return _too_large(request, limit) if length > limit else None
        if "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return None
        return self._read_chunked(request, limit)

    def _read_chunked(self, request: HttpRequest, limit: int) -> HttpResponse | None:
        # Django reads a body only as far as its Content-Length, so without one it sees
        # none: the server has undone the chunking, read it here (bounded) and give Django
        # the length it needs.
        stream = getattr(request, "environ", {}).get("wsgi.input")
        if stream is None:
            return None
        pieces: list[bytes] = []
        size = 0
        while size <= limit:
            piece = stream.read(min(_PIECE, limit + 1 - size))
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
        if size > limit:
            return _too_large(request, limit)
        body = b"".join(pieces)
        request.META["CONTENT_LENGTH"] = str(size)
        request._stream = io.BytesIO(body)  # type: ignore[attr-defined]
        return None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested past API_JSON_MAX_DEPTH (however deep: Python's
    own parser recurses and would fail with a server error) is a 400 `out_of_bounds`, and
    NaN or Infinity (not JSON) a 400 `invalid`."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        if stream is None:
            return None
        raw = stream.read()
        try:
            text = raw.decode("utf-8")
            value = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise _too_deep() from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        body_depth_check(value)
        return value


def body_depth_check(value: Any) -> None:
    """Refuse a parsed body nested past API_JSON_MAX_DEPTH. Only its shape: what a value
    may hold (NUL, an integer's range) is each field's own bound (core.bounds), which names
    the field and, for a job's spec, the exact place in it."""
    limit = int(settings.API_JSON_MAX_DEPTH)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise _too_deep()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _too_deep() -> OutOfBounds:
    problem = f"must be nested at most {settings.API_JSON_MAX_DEPTH} levels deep."
    return OutOfBounds(f"The request body {problem}", fields={"body": [problem]})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
