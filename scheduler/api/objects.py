"""Logs and outputs over HTTP: the agents' chunk and upload calls, the buyers' reads, and
the filesystem storage's signed upload and download URLs (S3 signs its own)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidInput
from scheduler.agent_api.log_chunk import log_chunk_answer, too_large
from scheduler.api.authentication import IsNode, NodeRateThrottle, NodeTokenAuthentication
from scheduler.models import Job, JobOutput
from scheduler.selectors import job_get
from scheduler.services.logs import LogSlice, log_read, object_storage
from scheduler.services.outputs import (
    declared_files,
    output_download_url,
    output_for_download,
    output_list,
    output_receive,
    output_report,
    outputs_request,
)


class RawBytesParser(BaseParser):
    """Declares the raw body for the schema; views read the stream themselves, bounded."""

    media_type = "application/octet-stream"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return {}


def _bounded_int(raw: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}.",
                           fields={name: [f"A whole number from {low} to {high}."]})
    return int(raw)


class ChunkOutputSerializer(serializers.Serializer):
    offset = serializers.IntegerField(help_text="the log's size: where the next chunk starts")
    stored = serializers.IntegerField(help_text="bytes of this chunk that were new")
    cap = serializers.IntegerField(help_text="the most bytes a job's log may have")


class LogOutputSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    offset = serializers.IntegerField()
    next_offset = serializers.IntegerField()
    size = serializers.IntegerField()
    ended = serializers.BooleanField(help_text="the attempt has ended: no more bytes will come")
    purged = serializers.BooleanField(help_text="deleted after the retention period")
    text = serializers.CharField()


class DeclaredFileSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=0)
    sha256 = serializers.CharField(min_length=64, max_length=64)


class OutputsInputSerializer(serializers.Serializer):
    files = DeclaredFileSerializer(many=True)


class UploadTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()


class UploadTicketsSerializer(serializers.Serializer):
    results = UploadTicketSerializer(many=True)


class OutputReportInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    ok = serializers.BooleanField()
    error = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class JobOutputFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    state = serializers.ChoiceField(choices=JobOutput.State.choices)
    error = serializers.CharField()
    attempt_assignment = serializers.IntegerField(source="assignment_id")
    uploaded_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField(allow_null=True, help_text="short-lived signed download URL")


def slice_json(piece: LogSlice) -> dict[str, Any]:
    return {"attempt": piece.attempt, "offset": piece.offset, "next_offset": piece.next_offset,
            "size": piece.size, "ended": piece.ended, "purged": piece.purged,
            "text": piece.data.decode("utf-8", errors="replace")}


def follow_step(*, job_id: int, attempt: int | None, offset: int) -> tuple[LogSlice, bool]:
    """One look at a followed log: new bytes from `offset`, and whether following ends
    (the attempt ended, or the job ended with no log at all)."""
    piece = log_read(job_id=job_id, attempt=attempt, offset=offset,
                     limit=settings.LOG_READ_MAX_BYTES)
    if piece.attempt == 0:
        state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
        return piece, state not in (Job.State.QUEUED, Job.State.PLACED, Job.State.RUNNING)
    done = piece.purged or (piece.ended and piece.next_offset >= piece.size)
    return piece, done


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _org_id(request: Request) -> int:
    return int(request.organization.pk)  # type: ignore[attr-defined]


class _AgentApi(APIView):
    authentication_classes = [NodeTokenAuthentication]
    permission_classes = [IsNode]
    throttle_classes = [NodeRateThrottle]

    def node_id(self, request: Request) -> int:
        return int(request.auth.pk)


class AgentLogChunkApi(APIView):
    """The body is the chunk's raw bytes (at most LOG_CHUNK_MAX_BYTES, the one agent call
    allowed past the agents' JSON body cap); `?offset=` is where they start. The same
    answer as the agents' ASGI server gives (scheduler.agent_api.log_chunk)."""

    # log_chunk_answer authenticates, rate-limits and validates by itself.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []
    parser_classes = [RawBytesParser]

    @extend_schema(
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        parameters=[OpenApiParameter("offset", int, required=True)],
        # a security requirement object: spectacular's stub says str, the schema needs this
        responses=ChunkOutputSerializer, auth=[{"NodeToken": []}],  # type: ignore[list-item]
        summary="Append a chunk of the run's log at a byte offset (idempotent by offset)",
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = -1
        if not 0 <= declared <= settings.LOG_CHUNK_MAX_BYTES:
            answer = too_large()
        else:
            body = request._request.read(declared) if declared else b""
            answer = log_chunk_answer(request.META.get("HTTP_AUTHORIZATION", ""),
                                      assignment_id, request.query_params.get("offset"), body)
        return Response(answer.body, status=answer.status, headers=answer.headers)


class AgentOutputsApi(_AgentApi):
    @extend_schema(request=OutputsInputSerializer, responses=UploadTicketsSerializer,
                   summary="Signed upload URLs for the files the job wrote under "
                           "/suanli/outputs")
    def post(self, request: Request, assignment_id: int) -> Response:
        files = declared_files(request.data.get("files") if isinstance(request.data, dict)
                               else None)
        tickets = outputs_request(node_id=self.node_id(request), assignment_id=assignment_id,
                                  files=files, base_url=_base_url(request))
        return Response(UploadTicketsSerializer({"results": [vars(t) for t in tickets]}).data)


class AgentOutputReportApi(_AgentApi):
    @extend_schema(request=OutputReportInputSerializer, responses=JobOutputFileSerializer,
                   summary="Say an output's upload is done or gave up")
    def post(self, request: Request, assignment_id: int) -> Response:
        s = OutputReportInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        output = output_report(node_id=self.node_id(request), assignment_id=assignment_id,
                               **s.validated_data)
        return Response(JobOutputFileSerializer(_with_url(output, request)).data)


def _base_url(request: Request) -> str:
    return settings.OBJECT_PUBLIC_BASE_URL or request.build_absolute_uri("/")


def _with_url(output: JobOutput, request: Request) -> JobOutput:
    output.url = output_download_url(output, base_url=_base_url(request))  # type: ignore[attr-defined]
    return output


class JobLogsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("attempt", int, description="1 for the first run; default the "
                                                         "latest"),
            OpenApiParameter("offset", int, description="byte offset to read from"),
            OpenApiParameter("limit", int, description="most bytes to read"),
            OpenApiParameter("follow", bool, description="stream new bytes as server-sent "
                                                         "events until the run ends"),
        ],
        responses=LogOutputSerializer,
        summary="The job's log (stdout and stderr interleaved, each line marked with its "
                "stream) from a byte offset",
    )
    def get(self, request: Request, job_id: int) -> Any:
        job_get(organization_id=_org_id(request), job_id=job_id)
        params = request.query_params
        attempt_raw = params.get("attempt")
        attempt = None if not attempt_raw else _bounded_int(attempt_raw, "attempt", default=0,
                                                            low=1, high=10_000)
        offset = _bounded_int(params.get("offset"), "offset", default=0, low=0, high=2**62)
        if params.get("follow") in ("1", "true"):
            # Under WSGI this holds a worker until the run ends; the agents' ASGI server
            # answers the same URL in its event loop (scheduler.api.log_follow).
            return StreamingHttpResponse(_follow_sync(job_id, attempt, offset),
                                         content_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
        limit = _bounded_int(params.get("limit"), "limit", default=settings.LOG_READ_MAX_BYTES,
                             low=1, high=settings.LOG_READ_MAX_BYTES)
        piece = log_read(job_id=job_id, attempt=attempt, offset=offset, limit=limit)
        return Response(LogOutputSerializer(slice_json(piece)).data)


def _follow_sync(job_id: int, attempt: int | None, offset: int) -> Iterator[bytes]:
    while True:
        piece, done = follow_step(job_id=job_id, attempt=attempt, offset=offset)
        if piece.data:
            yield sse_event("log", slice_json(piece))
            offset = piece.next_offset
            if attempt is None and piece.attempt:
                attempt = piece.attempt
            continue
        if done:
            yield sse_event("end", {"next_offset": offset, "attempt": piece.attempt})
            return
        yield b": keep-alive\n\n"
        time.sleep(settings.LOG_FOLLOW_POLL_S)


class JobOutputsApi(APIView):
    @extend_schema(responses=JobOutputFileSerializer(many=True),
                   summary="The files the job wrote, with short-lived signed download URLs")
    def get(self, request: Request, job_id: int) -> Response:
        job_get(organization_id=_org_id(request), job_id=job_id)
        outputs = [_with_url(o, request) for o in output_list(job_id=job_id)]
        return Response(JobOutputFileSerializer(outputs, many=True).data)


# Signed URLs are followed without an API key (an agent uploading, a browser downloading):
# the token, signed for one object until it expires, is the whole credential, so these
# operations need no key and name no key scope.
_SIGNED_URL_SCOPE = {"x-required-scope": "none"}
_SIGNED_URL_NOTE = ("No API key: the signed token in the URL is the credential, for one "
                    "object and until it expires.\n\nAPI key scope: none.")


def _signed_token(where: str) -> OpenApiParameter:
    return OpenApiParameter("token", str, OpenApiParameter.PATH,
                            description=f"the signed token from {where}")


class ObjectUploadApi(APIView):
    """The filesystem storage's presigned PUT: the token is the credential."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []
    parser_classes = [RawBytesParser]

    @extend_schema(request={"application/octet-stream": {"type": "string", "format": "binary"}},
                   responses={204: None}, auth=[],
                   parameters=[_signed_token("an upload ticket's URL (`POST agent/assignments/"
                                             "{id}/outputs/`), for that one file")],
                   extensions=_SIGNED_URL_SCOPE, description=_SIGNED_URL_NOTE,
                   summary="Upload an output through a signed URL (filesystem storage)")
    def put(self, request: Request, token: str) -> Response:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        output_receive(token=token[:1000], body=request._request,
                       content_length=length if length >= 0 else None)
        return Response(status=204)


class ObjectDownloadApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []

    @extend_schema(responses={(200, "application/octet-stream"): bytes}, auth=[],
                   parameters=[_signed_token("an output's `url` (`GET jobs/{id}/outputs/`)")],
                   extensions=_SIGNED_URL_SCOPE, description=_SIGNED_URL_NOTE,
                   summary="Download an output through a signed URL (filesystem storage)")
    def get(self, request: Request, token: str) -> FileResponse:
        output = output_for_download(token=token[:1000])
        handle = object_storage().open(output.storage_name, "rb")
        return FileResponse(handle, as_attachment=True,
                            filename=output.name.rsplit("/", 1)[-1],
                            content_type="application/octet-stream")
