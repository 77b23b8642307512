"""Freeze windows: "Fri 16:00-Mon 08:00 Asia/Seoul" — deploys refused inside them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WINDOW = re.compile(
    r"^\s*(?P<d1>[A-Za-z]{3})\w*\s+(?P<t1>\d{1,2}:\d{2})\s*-\s*"
    r"(?P<d2>[A-Za-z]{3})\w*\s+(?P<t2>\d{1,2}:\d{2})(?:\s+(?P<tz>[A-Za-z_/+\-0-9]+))?\s*$"
)
WEEK_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class FreezeWindow:
    text: str
    start: int  # minutes since Monday 00:00, in `zone`
    end: int
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> FreezeWindow:
        match = _WINDOW.match(text)
        if not match:
            raise ValueError(
                f"'{text}' is not a freeze window; write e.g. \"Fri 16:00-Mon 08:00 Asia/Seoul\"."
            )
        try:
            zone = ZoneInfo(match["tz"] or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{match['tz']}' in '{text}' is not a time zone.") from None
        return cls(
            text.strip(),
            _minutes(match["d1"], match["t1"], text),
            _minutes(match["d2"], match["t2"], text),
            zone,
        )

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        now = local.weekday() * 1440 + local.hour * 60 + local.minute
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end  # wraps over the week's end


def _minutes(day: str, clock: str, text: str) -> int:
    index = _DAYS.index(day.lower()) if day.lower() in _DAYS else -1
    hours, minutes = (int(p) for p in clock.split(":"))
    if index < 0 or hours > 23 or minutes > 59:
        raise ValueError(f"'{day} {clock}' in '{text}' is not a weekday and time.")
    return index * 1440 + hours * 60 + minutes


def active_freeze(windows: tuple[str, ...], moment: datetime) -> str | None:
    """The first window that contains `moment`, as written in flybot.toml."""
    for text in windows:
        if FreezeWindow.parse(text).contains(moment):
            return text
    return None
