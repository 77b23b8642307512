"""Time, in one place, so tests can move it instead of sleeping.

Datetimes are timezone-aware UTC throughout (SQLModel stores them that way).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _real_now() -> datetime:
    return datetime.now(UTC)


_now: Callable[[], datetime] = _real_now


def utcnow() -> datetime:
    return _now()


class FrozenClock:
    """A clock for tests: stands still until `advance` is called."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Install a clock (None restores the real one)."""
    global _now
    _now = clock or _real_now
