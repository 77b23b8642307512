"""Numbers, durations and flags at their extremes are usage errors; anything unexpected,
anywhere in the pipeline, is one "something went wrong (ref …)" reply and a logged traceback —
never an exception out of the dispatcher, never a dead shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shell.test_shell_process import answers, run_shell
from tests.support import Bot, snapshot, write_projects

EXTREMES = [
    ("lock ping-go prod --for 99999999999w", "--for"),
    ("lock ping-go prod --for 999999999999999999999999s", "--for"),
    ("lock ping-go prod --for 0s", "--for"),
    ("lock ping-go prod --for=-5m", "--for"),
    ("audit --limit 99999999999", "--limit"),
    ("audit --limit -1", "--limit"),
    ("approve 99999999999", "<id>"),
    ("approve 0", "<id>"),
    ("reject -3 nope", "<id>"),
    ("rollback ping-go prod 0", "<version>"),
    ("rollback ping-go prod 18446744073709551617", "<version>"),
    ("releases ping-go prod --limit 1e9", "--limit"),
    ("deploy ping-go prod --strategy yolo", "--strategy"),
    ("deploy ping-go prod '<!channel>'", "<image>"),
]


@pytest.mark.parametrize(("line", "names"), EXTREMES)
async def test_extreme_values_are_one_usage_line_and_change_nothing(
    tmp_path: Path, line: str, names: str
) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("shell:local:alice",)
    )
    before = snapshot(bot.engine)
    outcome, conversation = await bot.run("alice", line)
    assert outcome.status == "usage", (line, conversation.all_text())
    [reply] = conversation.private
    assert names in reply.text and "\n" not in reply.text
    assert snapshot(bot.engine) == before


def test_the_shell_survives_an_overflowing_line(tmp_path: Path) -> None:
    out = answers(run_shell(tmp_path, "lock ping-go prod --for 99999999999w\nwhoami\n"))
    [refused] = out["alice> lock ping-go prod --for 99999999999w"]
    assert refused.startswith("(only you) ✗ --for:")
    assert out["alice> whoami"][1] == "You: alice (shell:local:alice)"
