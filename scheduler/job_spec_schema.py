"""A job's `spec` as the schema describes it: one of a simulated run or a command, with
the bounds suanli_agent.workload_spec enforces (its constants, not copies of them), so
that what the schema promises and what the server refuses do not drift apart."""

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from suanli_agent.workload_spec import (
    IMAGE_REFERENCE,
    MAX_COMMAND_ITEMS,
    MAX_ENVIRONMENT_KEYS,
    MAX_IMAGE_CHARS,
    MAX_SIMULATED_S,
    NETWORKS,
)

_NO_NUL = "^[^\\x00]*$"
# The image grammar without its group names (Python's syntax for them is not the schema's
# ECMA 262 one), anchored as fullmatch is; a leading '-' is refused as the check does.
_IMAGE_PATTERN = "^(?!-)(?:" + re.sub(r"\(\?P<\w+>", "(?:", IMAGE_REFERENCE.pattern) + ")$"

SIMULATED_SPEC: dict[str, Any] = {
    "type": "object",
    "title": "simulate",
    "description": "A simulated run: no process starts; the node reports usage as if a job "
                   "ran for `seconds`.",
    "properties": {
        "simulate": {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": MAX_SIMULATED_S},
                "ai_tokens_per_second": {"type": "number", "minimum": 0, "maximum": 10**9,
                                         "nullable": True},
                "exit_code": {"type": "integer", "minimum": 0, "maximum": 255,
                              "nullable": True},
                "fail": {"description": "truthy: the run fails"},
            },
            "required": ["seconds"],
        },
    },
    "required": ["simulate"],
    "additionalProperties": False,
}

COMMAND_SPEC: dict[str, Any] = {
    "type": "object",
    "title": "command",
    "description": "A command run in a container on the node.",
    "properties": {
        "command": {
            "oneOf": [
                {"type": "string", "description": "run by /bin/sh -c",
                 "pattern": "^[^\\x00]*[^\\x00\\s][^\\x00]*$"},
                {"type": "array", "description": "the program and its arguments",
                 "items": {"type": "string", "pattern": _NO_NUL},
                 "minItems": 1, "maxItems": MAX_COMMAND_ITEMS},
            ],
        },
        "image": {"type": "string", "minLength": 1, "maxLength": MAX_IMAGE_CHARS,
                  "pattern": _IMAGE_PATTERN, "nullable": True,
                  "description": "an image reference; the node's default image when absent"},
        "environment": {
            "type": "object", "nullable": True, "maxProperties": MAX_ENVIRONMENT_KEYS,
            "additionalProperties": {"type": "string", "pattern": "^[^\\x00\\r\\n]*$"},
            "description": "names match [A-Za-z_][A-Za-z0-9_]* and do not start with SUANLI_; "
                           "at most 32 KiB in all",
        },
        "network": {"type": "string", "enum": list(NETWORKS), "default": NETWORKS[0]},
    },
    "required": ["command"],
    "additionalProperties": False,
}

JOB_SPEC: dict[str, Any] = {"oneOf": [SIMULATED_SPEC, COMMAND_SPEC]}


@extend_schema_field(JOB_SPEC)
class JobSpecField(serializers.JSONField):
    """A job's spec: any JSON here, checked by workload_spec.spec_check in the service;
    the schema says what that check accepts."""
