"""Scratch PostgreSQL databases for benchmarks: made fresh from DATABASE_URL's server,
migrated, and dropped afterwards."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/suanli"


# What a served process of a bench needs to start with DJANGO_DEBUG off, as production
# does (config/security.py): a key of its own and the fake gateway asked for by name; plain
# http, as its clients speak.
SERVING_ENV = {
    "DJANGO_HTTPS": "false",
    "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only-" + "b" * 40,
    "PAYMENTS_GATEWAY": os.environ.get("PAYMENTS_GATEWAY") or "fake",
}
# The agents' server keeps an idle connection past an agent's beat interval, as
# docker/compose.yaml's `agents` service does: at gunicorn's default of 5 s every 10 s
# beat opened a new connection, and a fleet's reconnects overflowed the listen queue.
AGENTS_KEEP_ALIVE = ["--keep-alive", "75"]


def server_answering(url: str, *, seconds: float = 30.0) -> None:
    """Return once a server just started answers GET /healthz with 200, or after
    `seconds` (the bench's first request then says what is wrong)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def server_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_URL)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _admin() -> psycopg.Connection:
    return psycopg.connect(with_database(server_url(), "postgres"), autocommit=True)


@contextmanager
def scratch_database(name: str, *, migrate: bool = True) -> Iterator[str]:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url(), name)
    try:
        if migrate:
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"],
                check=True,
                env={**os.environ, "DATABASE_URL": url},
            )
        yield url
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use_database(url: str) -> None:
    """Point this process's Django at `url` and set it up."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def pg_binary(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else name
