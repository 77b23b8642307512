"""Anything unexpected, anywhere in the pipeline, is one "something went wrong (ref …)"
reply, with the traceback in the log under that ref — never an exception out of the
dispatcher."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from commands.context import CommandContext
from commands.kinds import Binding, Kind
from commands.registry import Param, command
from tests.support import Bot, write_projects


def _explode(label: str, word: str, binding: Binding) -> str:
    raise RuntimeError("a bug in a conversion")


@command(
    "boom", summary="Raises while its line is read.", params=(Param("x", Kind("x", "x", _explode)),)
)
async def boom(ctx: CommandContext) -> None:
    raise AssertionError("never reached")


async def test_an_unexpected_error_before_authorization_is_one_reply_with_a_ref(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    bot.services.registry.add(boom)
    with caplog.at_level(logging.ERROR):
        outcome, conversation = await bot.run("mallory", "boom 1")
    assert outcome.status == "error"
    [reply] = conversation.private
    match = re.fullmatch(r"Something went wrong \(ref ([0-9a-f]{8})\); it is logged\.", reply.text)
    assert match, reply.text
    [record] = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert record.exc_info and "a bug in a conversion" in str(record.exc_info[1])
