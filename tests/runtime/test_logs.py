"""Logs: JSON lines when stderr is no terminal (a real `flybot run`, at debug level, every
line parsed), the invocation's request id, platform and identity on its lines, Fly's request
id on a Fly failure's line, and the redaction of tokens and secret values, shown to be the
formatter's doing (the same record through a plain formatter still holds them)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonjsonlogger.json import JsonFormatter

from bot import logs
from bot.fly.errors import ServerError
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, TEAM, slash_command
from tests.slack.harness import BOB, slack_world

pytestmark = pytest.mark.timeout(120)


async def test_flybot_run_logs_json_lines_with_the_invocation_and_flys_request_id(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "viewer")
        bot = await w.start(verbose=True)  # debug: every library's lines too
        w.sim.inject("Machines_list", status=500)  # every try: the command fails
        async with bot.sender() as send:
            await send.command(slash_command(w.slack, "status shop dev", BOB, "bob"))
        await w.slack.wait_for(
            lambda: any("Fly refused or failed" in t for t in w.slack.private_to(BOB)), 60
        )
        fly_ids = {c.request_id for c in w.sim.calls if c.operation == "Machines_list"}
        assert await bot.stop() == 0

    records = bot.records()  # each line is one JSON object, or this raises
    assert len(records) > 50
    assert {"time", "level", "logger", "message"} <= set(records[0])
    [failure] = [
        r
        for r in records
        if r["logger"] == "commands.dispatch" and "Fly refused or failed" in r["message"]
    ]
    assert failure["level"] == "WARNING"
    assert failure["fly_request_id"] in fly_ids
    assert failure["platform"] == "slack"
    assert failure["identity"] == f"slack:{TEAM}:{BOB}"
    mine = [r for r in records if r["request_id"] == failure["request_id"]]
    assert len(mine) > 3  # the Fly client's lines, the retries', the pipeline's
    assert {(r["platform"], r["identity"]) for r in mine} == {("slack", f"slack:{TEAM}:{BOB}")}
    assert any(r["logger"] == "httpx" for r in mine)  # the Fly calls made for it
    for value in (BOT_TOKEN, SIGNING_SECRET, "test-token"):
        assert value not in bot.log


SECRET = 'hunter2-"quoted"-ключ'
SLACK_TOKEN = "xoxb-1234567890-abcdefghijkl"
FLY_TOKEN = "FlyV1 fm2_lJPECAAAAAAAAAAA,fm2_lJPEAAAAB"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(logging.DEBUG, stream=stream, json_lines=True)
    try:
        yield stream, logging.getLogger("tests.logs")
    finally:
        root.handlers[:], root.level = saved


def failing_with(text: str) -> BaseException:
    try:
        raise RuntimeError(text)
    except RuntimeError as exc:
        return exc


def test_tokens_and_held_secret_values_never_reach_a_line(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    logs.REDACTOR.hold([SECRET])
    exc = failing_with(f"the value was {SECRET} and the token {SLACK_TOKEN}")
    log.error(
        "setting %s with %s and %s", SECRET, SLACK_TOKEN, FLY_TOKEN, exc_info=exc,
        extra={"detail": {"value": SECRET}},
    )
    log.warning("escaped %r and as JSON %s", SECRET, json.dumps(SECRET))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]  # redaction kept them valid JSON
    text = stream.getvalue()
    for leaked in (SECRET, json.dumps(SECRET)[1:-1], repr(SECRET)[1:-1], SLACK_TOKEN, "fm2_"):
        assert leaked not in text, leaked
    assert records[0]["message"].startswith(f"setting {logs.MASK} with {logs.MASK} and {logs.MASK}")
    assert logs.MASK in records[0]["exc_info"] and "RuntimeError" in records[0]["exc_info"]

    # The same record through a formatter without the redactor still carries them all: the
    # masking above is the redactor's doing.
    record = logging.LogRecord(
        "tests.logs", logging.ERROR, __file__, 1, "setting %s with %s", (SECRET, SLACK_TOKEN),
        (type(exc), exc, exc.__traceback__),
    )
    plain = JsonFormatter(json_ensure_ascii=False).format(record)
    assert json.dumps(SECRET, ensure_ascii=False)[1:-1] in plain and SLACK_TOKEN in plain


def test_a_terminal_gets_human_lines_with_the_same_fields_and_redaction() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(logging.INFO, stream=stream, json_lines=False)
    try:
        logs.REDACTOR.hold([SECRET])
        with logs.invocation("shell", "shell:local:alice", request_id="r-1"):
            logging.getLogger("tests.logs").warning("held %s", SECRET)
    finally:
        root.handlers[:], root.level = saved
    [line] = stream.getvalue().splitlines()
    assert "WARNING tests.logs: held •••" in line
    assert "[request_id=r-1 platform=shell identity=shell:local:alice]" in line
    assert SECRET not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


async def test_the_invocations_fields_follow_its_tasks_and_a_fly_error_its_request_id(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured

    async def deploy_job() -> None:
        await asyncio.sleep(0)
        log.info("a step of the deploy")

    with logs.invocation("discord", "discord:1:2") as request_id:
        task = asyncio.create_task(deploy_job())  # a job started by the command
    log.info("outside any invocation")
    await task
    error = ServerError("boom", method="GET", path="/v1/apps/x", status=500, request_id="fly-r9")
    log.warning("Fly failed: %s", error)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    outside, step, fly = [r for r in records if r["logger"] == "tests.logs"]
    assert (step["request_id"], step["platform"], step["identity"]) == (
        request_id,
        "discord",
        "discord:1:2",
    )
    assert outside["request_id"] is None and outside["identity"] is None
    assert fly["fly_request_id"] == "fly-r9"
