"""core.loop_redis on real Redis: the commands a loop's requests wait on go together, each
caller gets its own reply or error, and a script Redis has forgotten is loaded again."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import redis
from django.conf import settings as django_settings

from core.loop_redis import LoopPipeline, loop_pipeline, loop_redis

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis")
T = TypeVar("T")


def _apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """On a loop of its own, as in a server worker (the test's thread may run one)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


@pytest.fixture
def key() -> Any:
    name = f"test:loop-redis:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(django_settings.REDIS_URL).delete(name)


def test_commands_waiting_together_share_round_trips(settings, key):
    settings.REDIS_ASYNC_LANES = 2

    async def crowd() -> tuple[list[int], int]:
        pipeline = loop_pipeline()
        client = pipeline.client
        made = 0
        real = client.pipeline

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal made
            made += 1
            return real(*args, **kwargs)

        client.pipeline = counted  # type: ignore[method-assign]
        replies = await asyncio.gather(*(pipeline.call("INCR", key) for _ in range(300)))
        return list(replies), made

    replies, round_trips = _apart(crowd())

    assert sorted(replies) == list(range(1, 301))  # each caller its own reply, none lost
    assert round_trips <= 10  # two lanes: the first two commands, then the rest in batches


def test_a_script_redis_does_not_know_is_loaded(key):
    # A script of its own (a comment makes its hash new): SCRIPT FLUSH would take every
    # other test's scripts with it.
    body = f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])".encode()

    async def twice() -> tuple[int, int]:
        pipeline = loop_pipeline()
        known_before = (await loop_redis().script_exists(hashlib.sha1(body).hexdigest()))[0]
        assert not known_before
        return (await pipeline.script(body, [key], [5]), await pipeline.script(body, [key], [7]))

    assert _apart(twice()) == (5, 12)


def test_each_caller_gets_its_own_error_and_the_others_their_replies(key):
    async def mixed() -> list[Any]:
        pipeline = loop_pipeline()
        await pipeline.call("SET", key, "text")
        return list(await asyncio.gather(
            pipeline.call("GET", key), pipeline.call("INCR", key), pipeline.call("STRLEN", key),
            return_exceptions=True))

    got, wrong_type, length = _apart(mixed())

    assert got == b"text" and length == 4
    assert isinstance(wrong_type, redis.ResponseError)


def test_with_redis_unreachable_every_caller_is_told_at_once(settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # discard: nothing listens

    async def refused() -> list[Any]:
        return await asyncio.gather(*(loop_pipeline().call("PING") for _ in range(50)),
                                    return_exceptions=True)

    errors = _apart(refused())

    assert len(errors) == 50
    assert all(isinstance(e, redis.ConnectionError) for e in errors), errors[:3]


def test_a_caller_that_goes_away_before_its_batch_is_not_sent(key):
    async def one_leaves() -> list[Any]:
        pipeline = LoopPipeline(loop_redis(), lanes=1)
        busy = asyncio.ensure_future(pipeline.call("BLPOP", f"{key}:empty", 0.2))
        await asyncio.sleep(0.05)  # the only lane is out with the BLPOP
        leaving = asyncio.ensure_future(pipeline.call("INCR", key))
        staying = [asyncio.ensure_future(pipeline.call("INCR", key)) for _ in range(3)]
        await asyncio.sleep(0.01)  # all four queued behind it
        leaving.cancel()
        replies = await asyncio.gather(*staying)
        await busy
        return list(replies)

    assert sorted(_apart(one_leaves())) == [1, 2, 3]  # the INCR of the one gone never ran
