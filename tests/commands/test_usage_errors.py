"""Unknown verb, missing argument, unknown project, stage or role: one line, nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Bot, snapshot, write_projects

CASES = [
    ("deplyo ping-go prod", ["Unknown command 'deplyo'", "Commands:"]),
    ("lok ping-go prod", ["Unknown command 'lok'", "Did you mean 'lock'"]),
    ("perms", ["'perms' needs one of: grant, list, revoke"]),
    ("perms grnt @bob viewer", ["Unknown command 'perms grnt'", "Did you mean 'grant'"]),
    ("lock ping-go", ["Missing <stage>", "Usage: /fly lock <project> <stage>"]),
    ("perms grant @bob", ["Missing <role>", "Usage: /fly perms grant"]),
    (
        "lock pingo prod",
        ["Unknown project 'pingo'", "Did you mean 'ping-go'", "Projects: hello, ping-go"],
    ),
    (
        "lock ping-go prdo",
        ["Unknown stage 'prdo' of ping-go", "Did you mean 'prod'", "Stages: dev, prod"],
    ),
    (
        "perms grant @bob deployr ping-go",
        ["Unknown role 'deployr'", "viewer, deployer, approver, admin"],
    ),
    ("perms grant bob viewer", ["'bob' is not a user"]),
    ("audit --limit many", ["--limit must be a whole number"]),
    ("audit --limt 3", ["Unknown flag --limt", "--limit"]),
    ("lock ping-go prod --for soon", ["--for:", "is not a duration"]),
    ("unlock ping-go prod extra", ["Too many arguments", "Usage: /fly unlock"]),
    ("perms grant @bob viewer * prod", ["needs a project"]),
]


@pytest.mark.parametrize(("line", "expected"), CASES)
async def test_bad_input_gets_one_clear_line_and_changes_nothing(
    tmp_path: Path, line: str, expected: list[str]
) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        write_projects(tmp_path),
        admins=("shell:local:alice",),
    )
    before = snapshot(bot.engine)
    outcome, conversation = await bot.run("alice", line)
    assert outcome.status == "usage"
    assert conversation.public == []
    [reply] = conversation.private
    assert "\n" not in reply.text
    for fragment in expected:
        assert fragment in reply.text
    assert snapshot(bot.engine) == before


async def test_a_usage_error_from_a_stranger_does_not_even_record_them(tmp_path: Path) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db.sqlite'}", write_projects(tmp_path))
    before = snapshot(bot.engine)
    outcome, _ = await bot.run("mallory", "lock nope prod")
    assert outcome.status == "usage"
    assert snapshot(bot.engine) == before
