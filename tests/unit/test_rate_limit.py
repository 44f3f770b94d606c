"""Rate-limit rules as settings write them, and the counting (keyhouse.store.rate_limits) in
process memory and in the machine's Redis."""

from __future__ import annotations

import os
import re
import threading
import uuid

import pytest
import redis

from keyhouse.rules.rate_limit import Verdict, describe, parse_rule
from keyhouse.settings import Settings
from keyhouse.store.rate_limits import RateLimits

REDIS_URL = os.environ.get("KEYHOUSE_TEST_REDIS", "redis://127.0.0.1:6379/15")


def test_rules_are_written_as_people_say_them() -> None:
    assert describe(parse_rule("5/hour")) == "5 an hour"
    assert describe(parse_rule("3000/minute")) == "3000 a minute"
    assert describe(parse_rule("10 per 30 seconds")) == "10 per 30 seconds"
    assert parse_rule("off") is None


@pytest.mark.parametrize("bad", ["5", "fast", "5/fortnight", "-1/hour", ""])
def test_a_bad_rule_is_refused_at_start_with_what_to_write(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape("e.g. '3000/minute'")):
        Settings(rate_limit=bad)


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert Verdict(False, 0.2).retry_after_header == "1"
    assert Verdict(False, 59.01).retry_after_header == "60"


def exercise(limits: RateLimits, who: str) -> None:
    for _ in range(3):
        assert limits.hit("3/minute", "k", who).allowed
    refused = limits.hit("3/minute", "k", who)
    assert not refused.allowed
    assert 55 <= refused.retry_after <= 60
    assert not limits.test("3/minute", "k", who).allowed
    assert limits.hit("3/minute", "k", who + "-other").allowed  # keys count apart
    assert limits.hit("off", "k", who).allowed
    limits.clear("3/minute", "k", who)
    assert limits.hit("3/minute", "k", who).allowed


def test_counting_in_process_memory() -> None:
    exercise(RateLimits(), "memory")


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_URL}: {exc} (CI is set)", pytrace=False)
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


def test_counting_in_redis_is_shared_by_every_limiter_on_it() -> None:
    redis_or_skip()
    who = uuid.uuid4().hex
    exercise(RateLimits(REDIS_URL), who)
    first, second = RateLimits(REDIS_URL), RateLimits(REDIS_URL)
    assert first.hit("2/minute", "shared", who).allowed
    assert second.hit("2/minute", "shared", who).allowed
    assert not first.hit("2/minute", "shared", who).allowed


def test_concurrent_hits_never_let_more_through_than_the_rule() -> None:
    limits = RateLimits()

    def ask(key: str, start: threading.Barrier, passed: list[bool]) -> None:
        start.wait()
        for _ in range(5):
            passed.append(limits.hit("10/minute", key).allowed)

    for round_ in range(20):
        passed: list[bool] = []
        start = threading.Barrier(8)
        threads = [
            threading.Thread(target=ask, args=(f"round-{round_}", start, passed)) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert passed.count(True) == 10, round_


def test_an_unreachable_redis_lets_requests_through() -> None:
    limits = RateLimits("redis://127.0.0.1:1/0")
    assert all(limits.hit("1/minute", "k").allowed for _ in range(3))
