"""Time, in one place, so tests can move it instead of sleeping.

Datetimes are naive UTC throughout: SQLite has no time zones and PostgreSQL columns are
declared without one, so naive UTC is the one form that round-trips unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None)  # noqa: E731


def utcnow() -> datetime:
    return _now()


class FrozenClock:
    """A clock for tests: stands still until `advance` is called."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 9, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Install a clock (None restores the real one)."""
    global _now
    _now = clock or (lambda: datetime.now(UTC).replace(tzinfo=None))
