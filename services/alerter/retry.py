"""When to retry a notification delivery, and how long to wait: pure policy, no I/O.

Retried: network errors (the receiver is down or unreachable), 408, 429 and
5xx, because they say "later" or say nothing about the request itself. Not
retried: any other 4xx, because sending the same bytes again cannot turn a
bad URL, a revoked token or a rejected payload into a success.

Waits grow exponentially with "equal jitter" (half fixed, half random) so a
fleet of alerters that lost the same receiver do not hammer it in lockstep
when it comes back. A ``Retry-After`` from the receiver (429/503) replaces the
backoff, capped so a misconfigured receiver cannot park the queue for hours. Attempts
stop at ``max_attempts`` or once the next wait would go past
``retry_window_s`` after the first attempt; the notification is then
dead-lettered, never silently dropped.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 12
    #: Give up once the next attempt would start later than this after the first
    retry_window_s: float = 900.0
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    #: Longest Retry-After honoured; beyond it the wait is clipped to this
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need max_attempts >= 1 and 0 <= base_delay_s <= max_delay_s")


@dataclass(frozen=True, slots=True)
class Decision:
    retry: bool
    delay_s: float = 0.0
    #: Why: "ok", "http_<code>", "network", "attempts_exhausted", "window_exhausted"
    reason: str = ""


def retryable(status: int | None) -> bool:
    """``None`` means no HTTP response at all (connection refused, timeout, reset)."""
    return status is None or status in RETRYABLE_STATUS or 500 <= status <= 599


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or ``None``."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, float(when.timestamp()) - now_epoch)


def backoff(policy: RetryPolicy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Wait after failed attempt number ``attempt`` (1-based): equal jitter on ``base * 2**(n-1)``."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    elapsed_s: float,
    status: int | None,
    retry_after: str | None = None,
    now_epoch: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """What to do after attempt ``attempt`` got ``status`` (``None``: network error)."""
    if status is not None and 200 <= status <= 299:
        return Decision(False, reason="ok")
    reason = "network" if status is None else f"http_{status}"
    if not retryable(status):
        return Decision(False, reason=reason)
    if attempt >= policy.max_attempts:
        return Decision(False, reason="attempts_exhausted")
    hinted = parse_retry_after(retry_after, now_epoch)
    # The receiver said when: believe it (clipped), rather than guess with backoff.
    delay = backoff(policy, attempt, rand) if hinted is None else min(hinted, policy.max_retry_after_s)
    if elapsed_s + delay > policy.retry_window_s:
        return Decision(False, reason="window_exhausted")
    return Decision(True, delay, reason)
