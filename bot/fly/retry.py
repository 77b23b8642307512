"""Retrying transient Fly failures, bounded by attempts and a time budget per call."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from bot.fly.config import RetryPolicy
from bot.fly.errors import (
    FlyAPIError,
    FlyTimeoutError,
    RateLimitedError,
    ServerError,
    TransportError,
)

log = logging.getLogger("bot.fly")

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Worth another try for an idempotent call: 408, 429, 5xx, timeouts, transport errors."""
    return isinstance(exc, RateLimitedError | ServerError | FlyTimeoutError | TransportError)


def is_safe_to_resend(exc: BaseException) -> bool:
    """Worth another try even for a non-idempotent call: Fly surely did not act on it."""
    if isinstance(exc, RateLimitedError):
        return True
    return isinstance(exc, TransportError | FlyTimeoutError) and not exc.request_sent


def is_ambiguous(exc: BaseException) -> bool:
    """The request may have been applied although we got no success answer."""
    return is_transient(exc) and not is_safe_to_resend(exc)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Wait:
    """Fly's Retry-After when it sent one, else exponential backoff with full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_initial, max=policy.backoff_max
        )

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, FlyAPIError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    sleep = state.upcoming_sleep
    log.warning(
        "fly call failed, retrying in %.2fs (attempt %d): %s", sleep, state.attempt_number, exc
    )


async def with_retries(
    attempt: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retry_if: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run `attempt(seconds_left_in_budget)` until it succeeds, fails for good, or the
    policy's attempts or budget run out; then the last error is raised as is. A wait that
    would end past the budget is not started."""
    started = time.monotonic()
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.attempts)) | stop_before_delay(policy.budget),
        wait=_Wait(policy),
        retry=retry_if_exception(retry_if),
        reraise=True,
        before_sleep=_log_retry,
    )

    async def once() -> T:
        return await attempt(policy.budget - (time.monotonic() - started))

    return await retrying(once)
