"""Retry policy: what is retried, backoff with jitter, Retry-After, the give-up window."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from callqual.alerter.retry import RetryPolicy, backoff, decide, parse_retry_after, retryable


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 504])
def test_retryable(status: int | None) -> None:
    assert retryable(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_4xx_are_final(status: int) -> None:
    d = decide(RetryPolicy(), attempt=1, elapsed_s=0, status=status)
    assert not d.retry and d.reason == f"http_{status}"


def test_success() -> None:
    assert decide(RetryPolicy(), attempt=3, elapsed_s=0, status=204).reason == "ok"


def test_backoff_grows_with_equal_jitter_and_caps() -> None:
    p = RetryPolicy(base_delay_s=1, max_delay_s=8)
    assert [backoff(p, n, lambda: 0.0) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    assert [backoff(p, n, lambda: 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 8]


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("7", 0) == 7
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 12, UTC), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(12)
    assert parse_retry_after("garbage", now) is None
    d = decide(RetryPolicy(), attempt=1, elapsed_s=0, status=429, retry_after="7", rand=lambda: 0)
    assert d.retry and d.delay_s == 7
    capped = decide(RetryPolicy(max_retry_after_s=60), attempt=1, elapsed_s=0, status=503, retry_after="3600")
    assert capped.delay_s == 60


def test_gives_up_on_attempts_and_window() -> None:
    p = RetryPolicy(max_attempts=3, retry_window_s=10, base_delay_s=4, max_delay_s=4)
    assert not decide(p, attempt=3, elapsed_s=0, status=None).retry
    d = decide(p, attempt=1, elapsed_s=8, status=None, rand=lambda: 1.0)
    assert not d.retry and d.reason == "window_exhausted"
