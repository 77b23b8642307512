from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.freeze import FreezeWindow, active_freeze

SEOUL_WEEKEND = "Fri 16:00-Mon 08:00 Asia/Seoul"


@pytest.mark.parametrize(
    ("moment", "frozen"),
    [
        (datetime(2026, 11, 27, 6, 59, tzinfo=UTC), False),  # Fri 15:59 in Seoul
        (datetime(2026, 11, 27, 7, 0, tzinfo=UTC), True),  # Fri 16:00 in Seoul
        (datetime(2026, 11, 29, 12, 0, tzinfo=UTC), True),  # Sunday
        (datetime(2026, 11, 29, 22, 59, tzinfo=UTC), True),  # Mon 07:59 in Seoul
        (datetime(2026, 11, 29, 23, 0, tzinfo=UTC), False),  # Mon 08:00 in Seoul
        (datetime(2026, 12, 2, 3, 0, tzinfo=UTC), False),  # Wednesday
    ],
)
def test_a_window_that_wraps_over_the_weekend(moment: datetime, frozen: bool) -> None:
    assert FreezeWindow.parse(SEOUL_WEEKEND).contains(moment) is frozen
    assert (active_freeze((SEOUL_WEEKEND,), moment) == SEOUL_WEEKEND) is frozen


def test_a_window_inside_one_day_defaults_to_utc() -> None:
    window = FreezeWindow.parse("Tue 09:00-Tue 10:30")
    assert window.contains(datetime(2026, 12, 1, 9, 45, tzinfo=UTC))
    assert not window.contains(datetime(2026, 12, 1, 10, 30, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Friday afternoon", "is not a freeze window"),
        ("Fri 16:00-Mon 08:00 Mars/Olympus", "is not a time zone"),
        ("Fri 25:00-Mon 08:00", "is not a weekday and time"),
        ("Fre 16:00-Mon 08:00", "is not a weekday and time"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FreezeWindow.parse(text)
