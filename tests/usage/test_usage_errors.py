"""Bad input to the usage verbs: one clear line, and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import snapshot
from tests.usage.conftest import usage_world


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("usage --month 2026-13", "--month must be a month like 2026-11 (YYYY-MM), not '2026-13'"),
        ("usage --month nov", "--month must be a month like 2026-11"),
        ("usage --month 2999-01", "--month 2999-01 has not started yet"),
        ("usage nope", "Unknown project 'nope'."),
        ("usage ping-go extra", "Too many arguments ('extra'"),
        ("usage subscribe", "Missing <schedule>"),
        ("usage subscribe hourly", "'hourly' is not a schedule: use daily, weekly, monthly"),
        ('usage subscribe "0 9 * *"', "'0 9 * *' is not a schedule"),
        ('usage subscribe "61 9 * * *"', "'61 9 * * *' is not a valid cron expression"),
        ("usage subscribe daily #", "'#' is not a channel: give it as #channel"),
        ("usage subscribe daily --project nope", "Unknown project 'nope'."),
        ("usage unsubscribe x", "<id> must be a number like 3"),
        ("usage unsubscribe 42", "No usage subscription #42"),
        ("usage action 7", "Alert #7 has no suggested action"),
    ],
)
async def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, line: str, says: str
) -> None:
    async with usage_world(tmp_path) as world:
        before = snapshot(world.bot.engine)
        calls = len(world.sim.calls)
        outcome, conversation = await world.bot.run("bob", line)
        assert outcome.status in ("usage", "error"), (outcome, conversation.all_text())
        [reply] = conversation.private
        assert says in reply.text, reply.text
        assert "\n" not in reply.text
        assert conversation.public == []
        after = snapshot(world.bot.engine)
        for table in ("audit_entry", "dedupe_key"):
            before.pop(table, None), after.pop(table, None)
        assert after == before
        assert world.sim.calls[calls:] == []
