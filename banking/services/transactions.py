"""The transaction every money-moving entry point runs in."""

import random
import time
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import OperationalError, transaction

P = ParamSpec("P")
T = TypeVar("T")

# deadlock_detected and serialization_failure: the database rolled the transaction back,
# so running it again from the start is safe.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


def is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite (embedded mode only) reports a busy writer this way.
    return "database is locked" in str(exc)


def money_transaction(fn: Callable[P, T]) -> Callable[P, T]:
    """Run `fn` in a durable transaction, retried from the start on deadlock or
    serialization failure so that no such error reaches a caller.

    Called inside a transaction that is already open (a larger service composing ledger
    steps), it joins it through a savepoint; that outer entry point owns the retry.
    """

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                return fn(*args, **kwargs)

        def attempt() -> T:
            with transaction.atomic(durable=True):
                return fn(*args, **kwargs)

        return _retried(attempt)

    return wrapper


def _retried(attempt: Callable[[], T]) -> T:
    """Run `attempt` until it is not rolled back by a deadlock or serialization failure
    (at most LEDGER_DEADLOCK_RETRIES times, with a short random back-off)."""
    attempts = settings.LEDGER_DEADLOCK_RETRIES
    for number in range(attempts):
        try:
            return attempt()
        except OperationalError as exc:
            if number == attempts - 1 or not is_retryable(exc):
                raise
            time.sleep(random.uniform(0, min(0.25, 0.004 * 2**number)))
    raise AssertionError("unreachable")


def money_statement(fn: Callable[P, T]) -> Callable[P, T]:
    """For a function whose money moves in ONE SQL statement (a database function that
    does every step): with no transaction open, that statement is its own transaction,
    committed by PostgreSQL as it ends, which spares the BEGIN and COMMIT round trips of
    `money_transaction`; it is retried the same way on deadlock or serialization failure.
    Inside an open transaction it joins it through a savepoint, like `money_transaction`.
    """

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                return fn(*args, **kwargs)
        return _retried(lambda: fn(*args, **kwargs))

    return wrapper
