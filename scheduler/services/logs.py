"""Job logs: chunks an agent sends at byte offsets, stored through Django's storage API
(alias "objects"), indexed in PostgreSQL; reads by offset for buyers; retention.

A chunk is idempotent by its offset: bytes already stored are never written again, so an
agent that does not know whether its last POST arrived simply sends it again. A chunk that
starts past the end is refused with the end, and the agent resends from there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.database import server_bound_cursor
from core.errors import InvalidInput, NotFound
from core.sql_names import compose, insert_into
from scheduler.errors import LogCapExceeded, LogChunkTooLarge, LogClosed, LogOffsetGap
from scheduler.models import (
    ACTIVE_ASSIGNMENT_STATES,
    Assignment,
    AssignmentLog,
    LogChunk,
    Node,
)
from scheduler.services.node_tokens import NodeToken


def object_storage() -> Storage:
    return storages["objects"]


@dataclass(frozen=True)
class ChunkResult:
    offset: int  # the log's size after this chunk: where the next one starts
    stored: int  # bytes of this chunk that were new
    cap: int


@dataclass(frozen=True)
class LogSlice:
    attempt: int
    offset: int
    next_offset: int
    size: int
    data: bytes
    ended: bool  # the attempt has ended and no more bytes will come
    purged: bool


@dataclass(frozen=True)
class ChunkTarget:
    """What a chunk needs of its assignment, as the node's own token finds it."""

    node_id: int
    job_id: int | None  # None: the node has no such assignment
    state: str
    ended_at: datetime | None
    size: int | None  # None: the log has no row yet


# The agents' door reads the token's node and the assignment's state and log size in one
# statement: a chunk comes from every running job's node every 2 s, and the token lookup
# and the assignment read cost a round trip each.
_CHUNK_TARGET = compose("""
SELECT n.{Node.id}, a.{Assignment.job}, a.{Assignment.state}, a.{Assignment.ended_at},
       l.{AssignmentLog.size}
FROM {Node} AS n
LEFT JOIN {Assignment} AS a
  ON a.{Assignment.id} = %(assignment)s AND a.{Assignment.node} = n.{Node.id}
LEFT JOIN {AssignmentLog} AS l ON l.{AssignmentLog.assignment} = a.{Assignment.id}
WHERE n.{Node.token_prefix} = %(prefix)s AND n.{Node.token_hash} = %(hash)s
  AND n.{Node.status} <> {Node.Status.DISABLED}
""", Node, Assignment, AssignmentLog)


def chunk_target(token: NodeToken, assignment_id: int) -> ChunkTarget | None:
    """The node of `token` (None: no node not disabled has it) and what it has of
    `assignment_id`."""
    if connection.vendor != "postgresql":
        node = (Node.objects.filter(token_prefix=token.prefix, token_hash=token.hash)
                .exclude(status=Node.Status.DISABLED).values_list("id", flat=True).first())
        if node is None:
            return None
        row = (Assignment.objects.filter(pk=assignment_id, node_id=node)
               .values_list("job_id", "state", "ended_at", "log__size").first())
        return ChunkTarget(node, *row) if row else ChunkTarget(node, None, "", None, None)
    with server_bound_cursor() as cursor:
        cursor.execute(_CHUNK_TARGET, {"assignment": assignment_id, "prefix": token.prefix,
                                       "hash": token.hash}, prepare=True)
        found = cursor.fetchone()
    if found is None:
        return None
    node_id, job_id, state, ended_at, size = found
    return ChunkTarget(int(node_id), job_id, state or "", ended_at, size)


def _log_for(assignment_id: int, job_id: int) -> AssignmentLog:
    attempt = Assignment.objects.filter(job_id=job_id, id__lte=assignment_id).count()
    log, _ = AssignmentLog.objects.get_or_create(
        assignment_id=assignment_id, defaults={"job_id": job_id, "attempt": attempt})
    return log


def _accepting(state: str, ended_at: datetime | None) -> bool:
    if state in ACTIVE_ASSIGNMENT_STATES or ended_at is None:
        return True
    return timezone.now() <= ended_at + timedelta(seconds=settings.LOG_GRACE_S)


_INDEX_MOVE = compose("""
WITH moved AS (
    UPDATE {AssignmentLog} SET {AssignmentLog.size} = {AssignmentLog.size} + %(n)s,
                               {AssignmentLog.updated_at} = now()
    WHERE {AssignmentLog.assignment} = %(a)s AND {AssignmentLog.size} = %(start)s
    RETURNING {AssignmentLog.assignment})
INSERT INTO {chunk}
SELECT {AssignmentLog.assignment}, %(start)s, %(n)s, %(name)s, now() FROM moved
""", AssignmentLog, chunk=insert_into(LogChunk, "log", "offset", "length", "storage_name",
                                      "created_at"))


def _index_move(assignment_id: int, start: int, length: int, name: str) -> bool:
    """Move the log's end from `start` by `length` and index the chunk, if the end is
    still at `start`: on PostgreSQL one statement (no lock held across round trips)."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            moved = AssignmentLog.objects.filter(pk=assignment_id, size=start).update(
                size=F("size") + length, updated_at=timezone.now())
            if moved:
                LogChunk.objects.create(log_id=assignment_id, offset=start, length=length,
                                        storage_name=name)
            return bool(moved)
    with server_bound_cursor() as cursor:
        cursor.execute(_INDEX_MOVE, {"n": length, "a": assignment_id, "start": start,
                                     "name": name}, prepare=True)
        return bool(cursor.rowcount == 1)


def log_chunk_append(*, node_id: int, assignment_id: int, offset: int, data: bytes,
                     target: ChunkTarget | None = None) -> ChunkResult:
    """Store `data` at `offset` of the assignment's log. Bytes before the log's end are
    already there and are skipped; a chunk that starts past the end is refused. `target`:
    what `chunk_target` read of the assignment for this node, when the caller has it."""
    cap = settings.LOG_MAX_BYTES_PER_JOB
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput("offset must be a whole number, 0 or more.",
                           fields={"offset": ["A whole number, 0 or more."]})
    if len(data) > settings.LOG_CHUNK_MAX_BYTES:
        raise LogChunkTooLarge(f"A chunk is at most {settings.LOG_CHUNK_MAX_BYTES} bytes.")
    if target is None:
        # One read for what every chunk needs: the assignment, its state and the log's size.
        row = (Assignment.objects.filter(pk=assignment_id, node_id=node_id)
               .values_list("job_id", "state", "ended_at", "log__size").first())
        target = ChunkTarget(node_id, *row) if row else None
    if target is None or target.job_id is None:
        raise NotFound("No such assignment on this node.")
    job_id, state, ended_at, size = target.job_id, target.state, target.ended_at, target.size
    if not _accepting(state, ended_at):
        raise LogClosed("The assignment ended; its log takes no more chunks.")
    if size is None:
        size = _log_for(assignment_id, job_id).size
    if offset > size:
        raise LogOffsetGap(f"The log has {size} bytes: send from offset {size}.",
                           fields={"offset": size})
    new = data[size - offset:]
    if not new:
        return ChunkResult(offset=size, stored=0, cap=cap)
    if size + len(new) > cap:
        raise LogCapExceeded(f"A job's log is at most {cap} bytes.",
                             fields={"offset": size, "cap": cap})
    # The bytes go to storage before the index moves (storage may be off the machine, and
    # nothing is locked meanwhile); a racing duplicate loses the move below and its
    # object is removed.
    start = size
    storage = object_storage()
    name = storage.save(f"logs/{job_id}/{assignment_id}/{start:016d}-{uuid.uuid4().hex}",
                        ContentFile(new))
    if not _index_move(assignment_id, start, len(new), name):
        storage.delete(name)
        # Another request moved the end meanwhile: answer as to a resend.
        return log_chunk_append(node_id=node_id, assignment_id=assignment_id, offset=offset,
                                data=data)
    return ChunkResult(offset=start + len(new), stored=len(new), cap=cap)


def _utf8_boundary(data: bytes) -> int:
    """The length of `data` without a UTF-8 character cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 \
                else 4 if byte >> 3 == 0b11110 else 1
            return len(data) if back >= need else len(data) - back
    return len(data)


# Agents send their last chunk before they report the end: a log quiet this long after its
# assignment ended is complete (followers stop), while a late flush still arrives.
LOG_SETTLE_S = 3.0


def log_ended(log: AssignmentLog) -> bool:
    a = log.assignment
    if a.state in ACTIVE_ASSIGNMENT_STATES:
        return False
    last = max(a.ended_at or log.updated_at, log.updated_at)
    return timezone.now() > last + timedelta(seconds=LOG_SETTLE_S)


def log_read(*, job_id: int, attempt: int | None, offset: int, limit: int) -> LogSlice:
    """Bytes `[offset, offset + limit)` of an attempt's log (the latest attempt when
    None), cut so as not to split a UTF-8 character."""
    logs = AssignmentLog.objects.filter(job_id=job_id).select_related("assignment")
    log = (logs.filter(attempt=attempt) if attempt is not None else logs.order_by("-attempt")
           ).first()
    if log is None:
        if attempt not in (None, 0):
            raise NotFound("The job has no such attempt.")
        return LogSlice(attempt=0, offset=0, next_offset=0, size=0, data=b"", ended=False,
                        purged=False)
    ended = log_ended(log)
    if log.purged_at is not None:
        return LogSlice(attempt=log.attempt, offset=offset, next_offset=offset, size=log.size,
                        data=b"", ended=True, purged=True)
    end = min(log.size, offset + limit)
    pieces: list[bytes] = []
    if offset < end:
        chunks = (LogChunk.objects.filter(log=log, offset__lt=end)
                  .filter(offset__gt=offset - settings.LOG_CHUNK_MAX_BYTES)
                  .order_by("offset"))
        storage = object_storage()
        for chunk in chunks:
            if chunk.offset + chunk.length <= offset:
                continue
            with storage.open(chunk.storage_name, "rb") as handle:
                body = handle.read()
            pieces.append(body[max(0, offset - chunk.offset):end - chunk.offset])
    data = b"".join(pieces)
    if offset + len(data) < log.size:
        data = data[:_utf8_boundary(data)]
    return LogSlice(attempt=log.attempt, offset=offset, next_offset=offset + len(data),
                    size=log.size, data=data, ended=ended, purged=False)


def log_attempts(*, job_id: int) -> list[AssignmentLog]:
    return list(AssignmentLog.objects.filter(job_id=job_id).order_by("attempt"))


@dataclass(frozen=True)
class PurgeResult:
    logs: int
    chunks: int
    outputs: int


def objects_expire(*, now: datetime | None = None) -> PurgeResult:
    """Delete from storage the logs and outputs of jobs that ended more than the
    retention ago; their index rows stay, marked purged, so the API can say so."""
    from scheduler.models import JobOutput

    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OBJECT_RETENTION_DAYS)
    storage = object_storage()
    chunks = 0
    logs = AssignmentLog.objects.filter(purged_at__isnull=True, job__finished_at__lt=cutoff)
    purged_logs = 0
    for log in logs.iterator():
        for chunk in LogChunk.objects.filter(log=log).only("id", "storage_name"):
            storage.delete(chunk.storage_name)
            chunks += 1
        LogChunk.objects.filter(log=log).delete()
        AssignmentLog.objects.filter(pk=log.pk).update(purged_at=now)
        purged_logs += 1
    outputs = 0
    for output in JobOutput.objects.filter(purged_at__isnull=True, job__finished_at__lt=cutoff):
        storage.delete(output.storage_name)
        JobOutput.objects.filter(pk=output.pk).update(purged_at=now)
        outputs += 1
    return PurgeResult(logs=purged_logs, chunks=chunks, outputs=outputs)
