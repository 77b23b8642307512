"""Durations as people type them: 90s, 30m, 2h, 1h30m, 1d."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    compact = str(text).strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact) != "":
        raise ValueError(f"'{text}' is not a duration; use forms like 90s, 30m, 2h, 1h30m, 1d.")
    total = timedelta()
    try:
        for amount, unit in _PART.findall(compact):
            total += timedelta(**{_UNITS[unit]: int(amount)})
    except (OverflowError, ValueError):  # past timedelta's ~2.7 million years
        raise ValueError(f"'{text[:40]}' is longer than any duration flybot can use.") from None
    if total <= timedelta(0):
        raise ValueError(f"'{text}' is not a positive duration.")
    return total


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def format_elapsed(seconds: float) -> str:
    """A run time as people read it: 0.8s, 12s, 1m12s."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
