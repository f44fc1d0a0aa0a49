"""An agent's log chunk: `log_chunk_answer` answers it behind two doors, the DRF view
(scheduler.api.objects.AgentLogChunkApi: the API docs, Django's test client, WSGI) and
the agents' ASGI server (scheduler.api.log_doors), where every running job's node sends
one every 2 s and Django's request cycle cost more than the chunk's own work."""

from __future__ import annotations

import re

from django.conf import settings

from core.api_errors import error_body
from core.errors import DomainError, ErrorCode
from scheduler.agent_api.answers import Answer, unauthenticated
from scheduler.agent_api.rate_limit import node_call_throttled
from scheduler.services.logs import chunk_target, log_chunk_append
from scheduler.services.node_tokens import NodeToken, node_token_lookup

PATH = re.compile(r"^/api/v1/agent/assignments/(\d{1,18})/logs/$")


def _offset(raw: str | None) -> int | None:
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    return int(raw)


def too_large() -> Answer:
    return Answer(413, error_body("log_chunk_too_large",
                                  f"A chunk is at most {settings.LOG_CHUNK_MAX_BYTES} bytes."))


def log_chunk_answer(authorization: str, assignment_id: int, offset_raw: str | None,
                     body: bytes) -> Answer:
    """As DRF would answer it with NodeTokenAuthentication, IsNode and NodeRateThrottle:
    the token's node and the assignment read together (scheduler.services.logs
    chunk_target), behind the credential guard as any token lookup."""
    scheme, _, raw = authorization.partition(" ")
    if scheme != "Node":
        return unauthenticated("Authentication credentials were not provided.")
    token = NodeToken.parse(raw)
    target = (node_token_lookup(token, lambda: chunk_target(token, assignment_id))
              if token is not None else None)
    if target is None:
        return unauthenticated("Invalid node token.")
    over_rate = node_call_throttled(target.node_id)
    if over_rate is not None:
        return over_rate
    offset = _offset(offset_raw)
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
