"""An agent's log chunk: `log_chunk_answer` answers it behind two doors, the DRF view
(scheduler.api.objects.AgentLogChunkApi: the API docs, Django's test client, WSGI) and
the agents' ASGI server (scheduler.api.log_doors), where every running job's node sends
one every 2 s and Django's request cycle cost more than the chunk's own work."""

from __future__ import annotations

import re

from django.conf import settings

from core.api_errors import error_body
from core.bounds import digits_value
from core.errors import DomainError, ErrorCode
from scheduler.agent_api.answers import Answer
from scheduler.agent_api.rate_limit import node_call_found
from scheduler.services.logs import chunk_target, log_chunk_append

PATH = re.compile(r"^/api/v1/agent/assignments/(\d{1,18})/logs/$")


def too_large() -> Answer:
    return Answer(413, error_body("log_chunk_too_large",
                                  f"A chunk is at most {settings.LOG_CHUNK_MAX_BYTES} bytes."))


def log_chunk_answer(authorization: str, assignment_id: int, offset_raw: str | None,
                     body: bytes) -> Answer:
    """As DRF would answer it with NodeTokenAuthentication, IsNode and NodeRateThrottle:
    the token's node and the assignment read together (scheduler.services.logs
    chunk_target)."""
    target = node_call_found(authorization, lambda token: chunk_target(token, assignment_id),
                             lambda found: found.node_id)
    if isinstance(target, Answer):
        return target
    offset = digits_value(offset_raw, most=18)
    if offset is None:
        return Answer(400, error_body(ErrorCode.INVALID, "offset must be a whole number, 0 "
                                      "or more.", {"offset": ["A whole number, 0 or more."]}))
    if len(body) > settings.LOG_CHUNK_MAX_BYTES:
        return too_large()
    try:
        result = log_chunk_append(node_id=target.node_id, assignment_id=assignment_id,
                                  offset=offset, data=body, target=target)
    except DomainError as refused:
        return Answer(refused.status, error_body(refused.code, refused.message, refused.fields))
    return Answer(200, {"offset": result.offset, "stored": result.stored, "cap": result.cap})
