"""Database work for the ASGI door: on threads of their own, not asgiref's, each keeping
its database connection from one request to the next (CONN_MAX_AGE), as a WSGI worker
does, and run in the request's context (its id is in what the work logs)."""

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import close_old_connections

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def _threads() -> ThreadPoolExecutor:
    # Each thread keeps a connection; the work on them mostly waits on PostgreSQL, Redis
    # and storage (a log chunk's commit above all), so threads past the cores still add.
    return ThreadPoolExecutor(max_workers=settings.AGENT_DATABASE_THREADS,
                              thread_name_prefix="agent-db")


async def on_a_database_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    work = functools.partial(fn, *args, **kwargs)
    call = functools.partial(contextvars.copy_context().run, _with_connection, work)
    return await asyncio.get_running_loop().run_in_executor(_threads(), call)


def _with_connection(work: Callable[[], T]) -> T:
    close_old_connections()
    try:
        return work()
    finally:
        close_old_connections()
