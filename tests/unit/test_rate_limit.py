"""Token buckets (keyhouse.rules.rate_limit): examples and properties, with a hand-moved clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyhouse.rules.rate_limit import Bucket, Limit, RateLimiter, Verdict, check, refill, take

PER_MINUTE_30 = Limit(capacity=30, per_seconds=60)
PER_MINUTE_5 = Limit(capacity=5, per_seconds=60)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the pure rule ----------------------------------------------------------------------------


def test_a_new_client_starts_with_a_full_bucket() -> None:
    assert refill(None, PER_MINUTE_5, 7.0) == Bucket(5.0, 7.0)


def test_take_spends_one_token_until_the_bucket_is_empty() -> None:
    bucket = None
    for left in (4, 3, 2, 1, 0):
        bucket, verdict = take(bucket, PER_MINUTE_5, 0.0)
        assert verdict == Verdict(True)
        assert bucket.tokens == left
    bucket, verdict = take(bucket, PER_MINUTE_5, 0.0)
    assert not verdict.allowed
    assert verdict.retry_after == pytest.approx(12.0)  # 5 a minute: one every 12 s
    assert verdict.retry_after_header == "12"


def test_a_refused_request_spends_nothing() -> None:
    empty = Bucket(0.0, 0.0)
    bucket, verdict = take(empty, PER_MINUTE_5, 6.0)
    assert not verdict.allowed
    assert bucket.tokens == pytest.approx(0.5)
    assert verdict.retry_after == pytest.approx(6.0)
    _bucket, verdict = take(bucket, PER_MINUTE_5, 12.0)
    assert verdict.allowed


def test_tokens_refill_steadily_and_never_beyond_the_capacity() -> None:
    assert refill(Bucket(0.0, 0.0), PER_MINUTE_30, 10.0).tokens == pytest.approx(5.0)
    assert refill(Bucket(0.0, 0.0), PER_MINUTE_30, 3600.0).tokens == 30.0


def test_a_clock_going_backwards_adds_nothing() -> None:
    bucket = refill(Bucket(1.0, 100.0), PER_MINUTE_5, 50.0)
    assert bucket == Bucket(1.0, 100.0)


def test_check_spends_nothing() -> None:
    bucket = Bucket(1.0, 0.0)
    assert check(bucket, PER_MINUTE_5, 0.0) == Verdict(True)
    assert check(Bucket(0.0, 0.0), PER_MINUTE_5, 0.0).retry_after == pytest.approx(12.0)


def test_retry_after_is_at_least_one_second() -> None:
    assert Verdict(False, 0.01).retry_after_header == "1"
    assert Verdict(False, 1.2).retry_after_header == "2"


@pytest.mark.parametrize("capacity, per_seconds", [(0, 60), (5, 0), (5, -1)])
def test_a_limit_must_let_something_through(capacity: int, per_seconds: float) -> None:
    with pytest.raises(ValueError, match="capacity >= 1"):
        Limit(capacity, per_seconds)


@given(
    capacity=st.integers(1, 100),
    per_seconds=st.floats(0.5, 3600),
    steps=st.lists(st.floats(0, 120), max_size=60),
)
def test_never_more_than_capacity_plus_refill_in_any_run(
    capacity: int, per_seconds: float, steps: list[float]
) -> None:
    """Over a run of requests, the allowed ones never exceed the burst plus what refilled."""
    limit = Limit(capacity, per_seconds)
    bucket, now, allowed = None, 0.0, 0
    for step in steps:
        now += step
        bucket, verdict = take(bucket, limit, now)
        allowed += verdict.allowed
        assert 0.0 <= bucket.tokens <= capacity
        if not verdict.allowed:
            assert verdict.retry_after > 0
    assert allowed <= capacity + now * limit.rate + 1e-6


@given(
    capacity=st.integers(1, 50),
    per_seconds=st.floats(1, 600),
    wait=st.floats(0, 1000),
)
def test_after_retry_after_the_request_goes_through(
    capacity: int, per_seconds: float, wait: float
) -> None:
    limit = Limit(capacity, per_seconds)
    bucket = Bucket(0.0, 0.0)
    bucket, verdict = take(bucket, limit, wait / 1000)
    if not verdict.allowed:
        _bucket, again = take(bucket, limit, wait / 1000 + verdict.retry_after + 1e-9)
        assert again.allowed


# --- the limiter ------------------------------------------------------------------------------


def test_the_limiter_counts_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(PER_MINUTE_5, clock=clock)
    assert all(limiter.take("10.0.0.1").allowed for _ in range(5))
    assert not limiter.take("10.0.0.1").allowed
    assert limiter.take("10.0.0.2").allowed
    assert not limiter.check("10.0.0.1").allowed
    clock.now += 12
    assert limiter.check("10.0.0.1").allowed
    assert limiter.take("10.0.0.1").allowed
    assert not limiter.take("10.0.0.1").allowed


def test_the_limiter_forgets_refilled_buckets_when_it_grows() -> None:
    clock = Clock()
    limiter = RateLimiter(PER_MINUTE_5, clock=clock, max_keys=10)
    for n in range(10):
        limiter.take(f"ip{n}")
    clock.now += 60  # all of them are full again
    limiter.take("busy")
    limiter.take("another")
    assert len(limiter) <= 10
    assert len(limiter) == 2


def test_the_limiter_stays_bounded_under_many_fresh_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(PER_MINUTE_5, clock=clock, max_keys=100)
    for n in range(1000):
        clock.now += 0.001
        limiter.take(f"ip{n}")
        assert len(limiter) <= 100


def test_the_limiter_is_safe_across_threads() -> None:
    limiter = RateLimiter(Limit(100, 3600), clock=Clock())
    allowed: list[bool] = []

    def hammer() -> None:
        for _ in range(50):
            allowed.append(limiter.take("one").allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100
