"""`/fly logs` against the Fly simulator over HTTP: the newest lines in order, one code block
within Slack's and Discord's limits (cut from the top, with a note), filters, and bad input
answered in one line with nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord import render as discord
from adapters.slack import render as slack
from commands.reply import Reply
from tests.adapters.limits_check import check_discord, check_slack, discord_texts, slack_texts
from tests.flyharness import World, world
from tests.support import snapshot

APP = "shop-staging"


async def web_machine(w: World) -> str:
    machines = await w.machines(APP)
    return sorted(m.id for m in machines if m.metadata.get("fly_process_group") == "web")[0]


async def logs(w: World, line: str, user: str = "alice") -> tuple[str, Reply, str]:
    outcome, conversation = await w.bot.run(user, line)
    text = conversation.all_text()
    assert outcome.status == "ok", text
    [reply] = conversation.public
    return outcome.status, reply, text


async def test_lines_50_of_500_are_the_newest_50_in_order(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        machine = await web_machine(w)
        w.sim.emit_logs(APP, machine, [f"request {i:03d} done" for i in range(500)])
        _, reply, _ = await logs(w, f"logs shop staging --machine {machine} --lines 50")
        assert reply.code_tail and len(reply.code) == 50
        assert [line.rsplit(" ", 2)[-2] for line in reply.code] == [
            f"{i:03d}" for i in range(450, 500)
        ]
        assert all(f" {machine} " in line for line in reply.code)
        pages = [c for c in w.calls("Logs_list") if c.query.get("instance") == machine]
        assert len(pages) >= 6  # 500+ lines are 6 pages of 100: every one was read


@pytest.mark.parametrize(
    ("messages", "check", "texts"),
    [
        pytest.param(slack.messages, check_slack, slack_texts, id="slack"),
        pytest.param(discord.messages, check_discord, discord_texts, id="discord"),
    ],
)
async def test_500_long_lines_fit_one_message_cut_from_the_top(
    tmp_path: Path, messages: object, check: object, texts: object
) -> None:
    async with world(tmp_path) as w:
        machine = await web_machine(w)
        w.sim.emit_logs(APP, machine, [f"line {i:03d} " + "x" * 60 for i in range(500)])
        _, reply, _ = await logs(w, "logs shop staging --lines 500")
        payloads = messages(reply)  # type: ignore[operator]
        assert len(payloads) == 1  # one message, never a continuation
        check(payloads[0])  # type: ignore[operator]
        shown = "\n".join(texts(payloads[0]))  # type: ignore[operator]
        assert "line 499 " in shown  # the newest line is kept
        assert "line 000 " not in shown  # the oldest are cut
        assert "earlier lines cut to fit]" in shown
        kept = [n for n in range(500) if f"line {n:03d} " in shown]
        assert kept == list(range(kept[0], 500))  # one unbroken tail


async def test_region_filter_and_default_count(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        _, reply, _ = await logs(w, "logs shop staging --region syd")
        machines = {m.id for m in await w.machines(APP) if m.region == "syd"}
        assert machines and all(line.split(" ")[2] == "syd" for line in reply.code)
        assert {line.split(" ")[1] for line in reply.code} <= machines
        _, reply, _ = await logs(w, "logs shop staging")
        assert 0 < len(reply.code) <= 50
        assert any("listening on 0.0.0.0:8080" in line for line in reply.code)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("logs shop nowhere", "stage"),
        ("logs nosuch staging", "project"),
        ("logs shop staging --lines 0", "--lines must be a whole number from 1 to 500"),
        ("logs shop staging --lines 501", "--lines must be a whole number from 1 to 500"),
        ("logs shop staging --lines many", "--lines must be a whole number from 1 to 500"),
        ("logs shop staging --machine 0000dead0000", "No machine '0000dead0000' in shop-staging"),
        ("logs shop staging --machine ../x", "is not a machine id"),
        ("logs shop staging --region lhr", "has no machines in lhr. Its regions: nrt, sin, syd"),
        ("logs shop staging --region LONDON", "is not a Fly region code"),
    ],
)
async def test_bad_input_is_one_clear_line_and_changes_nothing(
    tmp_path: Path, line: str, says: str
) -> None:
    async with world(tmp_path) as w:
        await w.bot.run("alice", "status shop staging")  # the audit table exists and has rows
        before = snapshot(w.services.engine)
        outcome, conversation = await w.bot.run("alice", line)
        text = conversation.all_text()
        assert outcome.status in ("usage", "error"), text
        assert says in text, text
        assert len([r for r in conversation.public + conversation.private]) == 1
        assert [c for c in w.calls() if c.operation == "Logs_list"] == []
        after = snapshot(w.services.engine)
        before.pop("audit_entry"), after.pop("audit_entry")
        before.pop("dedupe_key", None), after.pop("dedupe_key", None)
        assert after == before


async def test_fly_429_and_500_are_retried_and_a_lasting_failure_is_one_line(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("Logs_list", status=429, count=1, retry_after=0)
        w.sim.inject("Logs_list", status=500, count=1)
        _, reply, _ = await logs(w, "logs shop staging --lines 5")
        assert len(reply.code) == 5
        w.sim.inject("Logs_list", status=500)
        outcome, conversation = await w.bot.run("alice", "logs shop staging")
        assert outcome.status == "error"
        assert "500" in conversation.all_text() or "Fly" in conversation.all_text()


async def test_a_viewer_may_read_logs_and_help_lists_the_verb(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.bot.run("alice", "perms grant shell:local:vic viewer shop staging")
        _, reply, _ = await logs(w, "logs shop staging", user="vic")
        assert reply.code
        _, conversation = await w.bot.run("vic", "help")
        assert "/fly logs" in conversation.all_text()
