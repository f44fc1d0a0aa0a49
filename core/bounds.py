"""Every value a stranger sends is bounded where it enters, one rule per field kind, shared
by the DRF serializers, the agents' fast path (plain functions, no DRF) and the forms.

A value out of bounds is refused with 400 and the field named, before any row is read or
written; the columns' own ranges are the outer limits (a PostgreSQL integer past its range
is a server error, not a refusal), each field's domain maximum the inner one."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from rest_framework import serializers

from core.errors import ErrorCode, InvalidInput

# The columns' ranges: PostgreSQL's integer and bigint, what SQLite's integer also holds.
INTEGER_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

# JSON a stranger sends: how deep and how big once parsed (bodies are capped in bytes
# before parsing, by core.request_bounds).
JSON_MAX_DEPTH = 16
JSON_MAX_BYTES = 64 * 1024

NUL = "\x00"


class OutOfBounds(InvalidInput):
    code = ErrorCode.OUT_OF_BOUNDS


def _refuse(field: str, message: str) -> OutOfBounds:
    return OutOfBounds(f"{field}: {message}", fields={field: [message]})


def digits_value(raw: str | None, *, most: int) -> int | None:
    """The whole number `raw` writes in at most `most` ASCII digits, else None: str.isdigit
    admits digits int() refuses (a superscript two), and int() spends time on thousands."""
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > most:
        return None
    return int(raw)


def bounded_int(value: Any, *, field: str, minimum: int = 0, maximum: int = BIGINT_MAX) -> int:
    """An integer (not a bool, not a float, not a string) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(field, "must be an integer.")
    if value < minimum or value > maximum:
        raise _refuse(field, f"must be between {minimum} and {maximum}.")
    return value


def bounded_text(value: Any, *, field: str, max_length: int) -> str:
    """A string without NUL, at most max_length characters."""
    if not isinstance(value, str):
        raise _refuse(field, "must be a string.")
    if len(value) > max_length:
        raise _refuse(field, f"must be at most {max_length} characters.")
    if NUL in value:
        raise _refuse(field, "must not contain NUL characters.")
    return value


def json_problem(value: Any, *, max_depth: int = JSON_MAX_DEPTH,
                 max_bytes: int = JSON_MAX_BYTES) -> str | None:
    """What is wrong with a parsed JSON value a stranger sent, or None: too deep, too big
    re-encoded, or a NUL in any key or string (PostgreSQL's jsonb refuses \\u0000)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"must be nested at most {max_depth} levels deep."
        if isinstance(item, str):
            if NUL in item:
                return "must not contain NUL characters."
        elif isinstance(item, dict):
            for key, child in item.items():
                if NUL in str(key):
                    return "must not contain NUL characters."
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > BIGINT_MAX:
            return "holds an integer out of range."
    if len(json.dumps(value, separators=(",", ":"))) > max_bytes:
        return f"must be at most {max_bytes} bytes as JSON."
    return None


def bounded_json(value: Any, *, field: str, max_depth: int = JSON_MAX_DEPTH,
                 max_bytes: int = JSON_MAX_BYTES) -> Any:
    problem = json_problem(value, max_depth=max_depth, max_bytes=max_bytes)
    if problem:
        raise _refuse(field, problem)
    return value


def bounded_query(params: Any, name: str, *, max_length: int = 64) -> str | None:
    """A query-string parameter as text, or None when absent; NUL or overlong → 400."""
    raw = params.get(name)
    if raw is None:
        return None
    return bounded_text(raw, field=name, max_length=max_length)


class BoundedIntegerField(serializers.IntegerField):
    """An integer within its column's range unless told a tighter one (default bigint,
    at least 0); the bounds appear in the schema as minimum/maximum."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, (bool, float)):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class BoundedJSONField(serializers.JSONField):
    """JSON bounded in depth, size and content (no NUL)."""

    def __init__(self, *, max_depth: int = JSON_MAX_DEPTH, max_bytes: int = JSON_MAX_BYTES,
                 **kwargs: Any) -> None:
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        problem = json_problem(value, max_depth=self.max_depth, max_bytes=self.max_bytes)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class BoundedIntegerFormField(forms.IntegerField):
    """The forms' BoundedIntegerField: an integer within its column's range unless told a
    tighter one (default bigint, at least 0), so a typed 2**63 is the form's error, not the
    database's."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)
