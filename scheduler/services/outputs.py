"""Job outputs: the agent declares the files its job wrote under /suanli/outputs, the
server answers with one signed upload URL per file (S3 presigned PUT, or a signed URL to
this server for the filesystem storage), so that a node never holds storage credentials;
buyers list them with short-lived signed download URLs.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from core.errors import InvalidInput, NotFound
from scheduler.errors import LogClosed, OutputCapExceeded, OutputMismatch, OutputUrlInvalid
from scheduler.models import ACTIVE_ASSIGNMENT_STATES, Assignment, JobOutput
from scheduler.services.logs import object_storage

UPLOAD_SALT = "suanli.output-upload"
DOWNLOAD_SALT = "suanli.output-download"
_NAME = re.compile(r"^[A-Za-z0-9._\-+=@,][A-Za-z0-9._\-+=@, /]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class DeclaredFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class UploadTicket:
    id: int
    name: str
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


def _check_name(name: Any) -> str:
    if (not isinstance(name, str) or not 1 <= len(name) <= 255 or not _NAME.match(name)
            or any(part in ("", ".", "..") for part in name.split("/"))):
        raise InvalidInput(f"Bad output name {str(name)[:80]!r}: a relative path of at most "
                           "255 characters (letters, digits, . _ - + = @ , space and /).",
                           fields={"name": ["Not a valid output path."]})
    return name


def declared_files(raw: Any) -> list[DeclaredFile]:
    """The files of an agent's request, bounded: names, sizes, hashes, count."""
    if not isinstance(raw, list) or len(raw) > settings.OUTPUT_MAX_FILES:
        raise OutputCapExceeded(f"At most {settings.OUTPUT_MAX_FILES} output files per job.")
    files: list[DeclaredFile] = []
    for item in raw:
        if not isinstance(item, dict):
            raise InvalidInput("Each file is an object with name, size and sha256.")
        size, sha = item.get("size"), item.get("sha256")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput("size must be a whole number of bytes.",
                               fields={"size": ["A whole number, 0 or more."]})
        if size > settings.OUTPUT_MAX_FILE_BYTES:
            raise OutputCapExceeded(
                f"{item.get('name')!s:.80}: a file is at most {settings.OUTPUT_MAX_FILE_BYTES} "
                "bytes.", fields={"size": [f"At most {settings.OUTPUT_MAX_FILE_BYTES}."]})
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise InvalidInput("sha256 must be 64 lowercase hex digits.",
                               fields={"sha256": ["64 lowercase hex digits."]})
        files.append(DeclaredFile(name=_check_name(item.get("name")), size=size, sha256=sha))
    if len({f.name for f in files}) != len(files):
        raise InvalidInput("Each output name once.")
    return files


def _accepting(a: Assignment) -> bool:
    if a.state in ACTIVE_ASSIGNMENT_STATES or a.ended_at is None:
        return True
    return timezone.now() <= a.ended_at + timedelta(seconds=settings.OUTPUT_GRACE_S)


def _is_filesystem() -> bool:
    return isinstance(object_storage(), FileSystemStorage)


def _upload_url(output: JobOutput, *, base_url: str,
                expires_at: datetime) -> tuple[str, dict[str, str]]:
    ttl = settings.OUTPUT_UPLOAD_URL_TTL_S
    if _is_filesystem():
        token = signing.dumps({"o": output.pk, "s": output.size, "h": output.sha256,
                               "e": int(expires_at.timestamp())}, salt=UPLOAD_SALT)
        return f"{base_url.rstrip('/')}/api/v1/objects/upload/{token}/", {}
    storage: Any = object_storage()
    client = storage.bucket.meta.client
    url = client.generate_presigned_url(
        "put_object",
        Params={"Bucket": storage.bucket_name, "Key": storage._normalize_name(output.storage_name),
                "ContentLength": output.size},
        ExpiresIn=ttl,
    )
    return str(url), {"Content-Length": str(output.size)}


def outputs_request(*, node_id: int, assignment_id: int, files: list[DeclaredFile],
                    base_url: str) -> list[UploadTicket]:
    """Signed upload URLs for the declared files; a file already uploaded with the same
    hash gets none (a resend after an agent restart uploads nothing twice)."""
    a = Assignment.objects.filter(pk=assignment_id, node_id=node_id).first()
    if a is None:
        raise NotFound("No such assignment on this node.")
    if not _accepting(a):
        raise LogClosed("The assignment ended; it takes no more outputs.")
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.OUTPUT_UPLOAD_URL_TTL_S)
    tickets: list[UploadTicket] = []
    with transaction.atomic():
        Assignment.objects.select_for_update().filter(pk=a.pk).first()
        existing = {o.name: o for o in JobOutput.objects.filter(assignment=a)}
        others = (JobOutput.objects.filter(job_id=a.job_id).exclude(assignment=a)
                  .aggregate(s=Sum("size"))["s"] or 0)
        names = {f.name for f in files}
        kept = sum(o.size for n, o in existing.items() if n not in names)
        total = others + kept + sum(f.size for f in files)
        if total > settings.OUTPUT_MAX_JOB_BYTES:
            raise OutputCapExceeded(f"A job's outputs are at most {settings.OUTPUT_MAX_JOB_BYTES} "
                                    "bytes in all.")
        if len(existing.keys() | names) > settings.OUTPUT_MAX_FILES:
            raise OutputCapExceeded(f"At most {settings.OUTPUT_MAX_FILES} output files per job.")
        for f in files:
            output = existing.get(f.name)
            if output is not None and output.state == JobOutput.State.UPLOADED \
                    and output.sha256 == f.sha256 and output.size == f.size:
                continue
            if output is None:
                output = JobOutput.objects.create(
                    assignment=a, job_id=a.job_id, name=f.name, size=f.size, sha256=f.sha256,
                    storage_name=f"outputs/{a.job_id}/{a.pk}/{f.name}")
            else:
                output.size, output.sha256 = f.size, f.sha256
                output.state, output.error = JobOutput.State.PENDING, ""
                output.save(update_fields=["size", "sha256", "state", "error"])
            url, headers = _upload_url(output, base_url=base_url, expires_at=expires_at)
            tickets.append(UploadTicket(id=output.pk, name=f.name, url=url, method="PUT",
                                        headers=headers, expires_at=expires_at))
    return tickets


def output_report(*, node_id: int, assignment_id: int, name: str, ok: bool,
                  error: str = "") -> JobOutput:
    """The agent's word on one upload: done (checked against what storage holds) or
    given up after its retries (said on the job)."""
    output = JobOutput.objects.filter(assignment_id=assignment_id, assignment__node_id=node_id,
                                      name=name).first()
    if output is None:
        raise NotFound("No such output of this assignment.")
    if not ok:
        JobOutput.objects.filter(pk=output.pk).exclude(state=JobOutput.State.UPLOADED).update(
            state=JobOutput.State.FAILED, error=error.replace("\x00", "")[:500])
        output.refresh_from_db()
        return output
    if output.state == JobOutput.State.UPLOADED:
        return output
    storage = object_storage()
    if not storage.exists(output.storage_name) or storage.size(output.storage_name) != output.size:
        raise OutputMismatch("Storage does not hold the declared bytes for this output.")
    JobOutput.objects.filter(pk=output.pk).update(state=JobOutput.State.UPLOADED,
                                                  uploaded_at=timezone.now(), error="")
    output.refresh_from_db()
    return output


def output_receive(*, token: str, body: Readable, content_length: int | None) -> JobOutput:
    """A PUT to the filesystem storage's signed upload URL: the body must be the declared
    size and hash, else nothing is stored."""
    try:
        claims = signing.loads(token, salt=UPLOAD_SALT)
    except signing.BadSignature as error:
        raise OutputUrlInvalid("This upload URL is not valid.") from error
    if timezone.now().timestamp() > int(claims["e"]):
        raise OutputUrlInvalid("This upload URL has expired.")
    output = JobOutput.objects.filter(pk=claims["o"]).select_related("assignment").first()
    if output is None or output.size != claims["s"] or output.sha256 != claims["h"]:
        raise OutputUrlInvalid("This upload URL is no longer valid.")
    if content_length is not None and content_length != output.size:
        raise OutputMismatch(f"The body must be {output.size} bytes.")
    digest = hashlib.sha256()
    received = 0
    with tempfile.TemporaryFile() as spool:
        while True:
            piece = body.read(min(1024 * 1024, output.size - received + 1))
            if not piece:
                break
            received += len(piece)
            if received > output.size:
                raise OutputMismatch(f"The body must be {output.size} bytes.")
            digest.update(piece)
            spool.write(piece)
        if received != output.size or digest.hexdigest() != output.sha256:
            raise OutputMismatch("The body's size or sha256 is not what was declared.")
        spool.seek(0)
        storage = object_storage()
        storage.delete(output.storage_name)
        saved = storage.save(output.storage_name, File(spool))
    JobOutput.objects.filter(pk=output.pk).update(storage_name=saved,
                                                  state=JobOutput.State.UPLOADED,
                                                  uploaded_at=timezone.now(), error="")
    output.refresh_from_db()
    return output


def output_download_url(output: JobOutput, *, base_url: str) -> str | None:
    if output.state != JobOutput.State.UPLOADED or output.purged_at is not None:
        return None
    ttl = settings.OUTPUT_DOWNLOAD_URL_TTL_S
    if _is_filesystem():
        token = signing.dumps({"o": output.pk, "e": int(timezone.now().timestamp()) + ttl},
                              salt=DOWNLOAD_SALT)
        return f"{base_url.rstrip('/')}/api/v1/objects/download/{token}/"
    storage: Any = object_storage()
    return str(storage.url(output.storage_name, expire=ttl))


def output_for_download(*, token: str) -> JobOutput:
    try:
        claims = signing.loads(token, salt=DOWNLOAD_SALT)
    except signing.BadSignature as error:
        raise OutputUrlInvalid("This download URL is not valid.") from error
    if timezone.now().timestamp() > int(claims["e"]):
        raise OutputUrlInvalid("This download URL has expired.")
    output = JobOutput.objects.filter(pk=claims["o"], state=JobOutput.State.UPLOADED,
                                      purged_at__isnull=True).first()
    if output is None:
        raise NotFound("No such output.")
    return output


def output_list(*, job_id: int) -> list[JobOutput]:
    """The latest attempt's file of each name: a name uploaded by a later attempt wins."""
    latest: dict[str, JobOutput] = {}
    for output in JobOutput.objects.filter(job_id=job_id).order_by("assignment_id", "name"):
        latest[output.name] = output
    return sorted(latest.values(), key=lambda o: o.name)
