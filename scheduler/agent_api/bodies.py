"""The one validation of what agents send on the fast path: the heartbeat's body and the
lease read's query, for every door (the ASGI door and the DRF views call the same
functions). A value out of bounds is refused here with 400, before it reaches the
write-behind buffer, whose flush serves every node at once."""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField, empty

from core.api_errors import error_body, validation_error_body
from core.bounds import BIGINT_MAX, digits_value
from core.errors import ErrorCode
from scheduler.agent_api.answers import Answer
from scheduler.agent_api.serializers import (
    AGENT_VERSION_MAX,
    GPU_ENTRY_MAX_BYTES,
    GPUS_LISTED_MAX,
    GPUS_PER_NODE_MAX,
    RUNNING_LISTED_MAX,
    HeartbeatInputSerializer,
)

# The serializer's own fields, bound once: validating with them is the serializer's
# validation without building a serializer (and deep-copying its fields) per request.
_FIELDS = HeartbeatInputSerializer().fields


class _NotJson(ValueError):
    pass


def _no_constants(name: str) -> NoReturn:
    raise _NotJson(f"{name} is not a number in JSON")


# One decoder for every body: json.loads with any option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parsed_json(body: bytes) -> Any | Answer:
    """The body as JSON ({} when empty), or the 400. Python's parser takes more than JSON
    (NaN, Infinity) and fails in ways of its own on what a stranger can send (nesting
    deeper than its recursion, integers longer than int() converts): all refused."""
    if not body:
        return {}
    try:
        # as json.loads reads bytes: UTF-8, -16 or -32
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        return Answer(400, error_body(ErrorCode.INVALID, "JSON parse error - nested too deep."))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the digit limit
        return Answer(400, error_body(ErrorCode.INVALID, f"JSON parse error - {exc}"[:200]))


def heartbeat_values(body: bytes) -> dict[str, Any] | Answer:
    """A heartbeat's values as HeartbeatInputSerializer cleans them, or the 400."""
    data = parsed_json(body)
    if isinstance(data, Answer):
        return data
    values, errors = validated(data)
    if errors:
        return Answer(400, validation_error_body(errors))
    return values


def validated(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values, errors) as HeartbeatInputSerializer(data=data) would give them."""
    plain = _plainly_valid(data)
    if plain is not None:
        return plain, {}
    if data is None:
        return {}, {"non_field_errors": ["No data provided"]}
    if not isinstance(data, dict):
        return {}, {"non_field_errors": [
            f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]}
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for name, f in _FIELDS.items():
        try:
            values[name] = f.run_validation(data.get(name, empty))
        except ValidationError as exc:
            errors[name] = exc.detail
        except SkipField:
            pass
    return values, errors


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= GPUS_PER_NODE_MAX


def _gpu_entry(value: Any) -> bool:
    """A flat GPU entry that GpuEntryField takes as it is, checked without re-encoding it
    (its JSON size is bounded from above: every character escaped, every number at its
    longest). Anything else, nested values too, is for the field itself to judge."""
    if type(value) is not dict:
        return False
    size = 2
    for key, item in value.items():
        if type(key) is not str or "\x00" in key:
            return False
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return False
            size += 6 * len(item) + 2
        elif kind is int:
            if not -BIGINT_MAX <= item <= BIGINT_MAX:
                return False
            size += 20
        elif kind is float or kind is bool or item is None:
            size += 24
        else:
            return False
        size += 6 * len(key) + 4
    return size <= GPU_ENTRY_MAX_BYTES


def _plainly_valid(data: Any) -> dict[str, Any] | None:
    """The values of a heartbeat shaped as agents send it (JSON numbers, a string, lists
    of objects and of ids), exactly as the serializer's fields would clean them; None for
    anything else, which the fields themselves then judge. What agents send every ten
    seconds needs no field machinery (tests/scheduler/test_agent_doors.py checks that
    both agree on any input)."""
    if type(data) is not dict or "isolation" in data:
        return None
    free, busy = data.get("free_gpus"), data.get("busy_gpus")
    utilization = data.get("utilization", 0)
    version = data.get("agent_version", "")
    gpus, running = data.get("gpus", []), data.get("running", [])
    if not (_count(free) and _count(busy) and type(version) is str and "\x00" not in version
            and type(gpus) is list and type(running) is list
            and len(gpus) <= GPUS_LISTED_MAX and len(running) <= RUNNING_LISTED_MAX):
        return None
    version = version.strip()
    if len(version) > AGENT_VERSION_MAX:
        return None
    if type(utilization) is float:
        if not (math.isfinite(utilization) and 0 <= utilization <= 1):
            return None
    elif type(utilization) is not int or not 0 <= utilization <= 1:
        return None
    if not all(_gpu_entry(g) for g in gpus):
        return None
    if not all(type(r) is int and 0 <= r <= BIGINT_MAX for r in running):
        return None
    return {
        "free_gpus": free, "busy_gpus": busy,
        "utilization": utilization if "utilization" not in data else float(utilization),
        "agent_version": version,
        "gpus": [dict(g) for g in gpus], "running": list(running),
    }


def lease_wait_seconds(query: str) -> int | Answer | None:
    """The `wait` of a lease read's query string: None when absent, the seconds when
    within bounds, else the refusal."""
    values = [v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "wait"]
    if not values:
        return None
    limit = settings.AGENT_LEASE_WAIT_MAX_S
    raw = values[-1]
    seconds = digits_value(raw, most=6)
    if seconds is None:
        seconds = -1
    if len(values) > 1 or not 1 <= seconds <= limit:
        return Answer(400, error_body(ErrorCode.INVALID,
                                      f"wait must be a whole number of seconds from 1 to {limit}.",
                                      {"wait": [f"From 1 to {limit}."]}))
    return seconds
