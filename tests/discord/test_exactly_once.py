"""Exactly once on Discord, with `flybot run` processes on one database (SQLite and
PostgreSQL): a click on a card sent before a restart works; two approvers clicking at once
plus a double click give one deploy and no duplicate vote; an interaction delivered to two
instances, or delivered again, runs once — refused by Discord's one acknowledgement, or,
when both acknowledgements get through, by the database's claim."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store.models import ApprovalRequest, ApprovalVote, AuditEntry, Release
from tests.discord.harness import BOB, CAROL, DAVE, discord_world
from tests.discord.test_story import card_of, check_every_call
from tests.fakes.discord_api import CHANNEL, FakeDiscord
from tests.flyharness import NEW

pytestmark = pytest.mark.timeout(150)


def succeeded(d: FakeDiscord, card_id: str) -> bool:
    return "succeeded" in d.messages[card_id].all_text()


async def test_a_click_on_a_card_sent_before_a_restart_works(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        first = await w.start()
        d = w.discord
        await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)) and d.threads)
        card = card_of(d)
        assert await first.stop() == 0
        await d.wait_for(lambda: not d.connected())
        second = await w.start()  # a new process: nothing of the old one in memory
        click = await d.click(card, "approval.approve:1", CAROL)
        await d.wait_for(lambda: succeeded(d, card.id), timeout=60)
        assert click.answers == [{"type": 6}]
        assert d.messages[card.id].buttons == []
        assert [r.state for r in w.rows(Release)] == ["succeeded"]
        check_every_call(d)
        assert await second.stop() == 0


async def test_two_approvers_at_once_and_a_double_click_two_instances(
    tmp_path: Path, database_url: str
) -> None:
    async with discord_world(tmp_path, database_url=database_url, approvals=2) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        w.grant(DAVE, "approver")
        first, second = await w.start(), await w.start()
        d = w.discord
        assert d.connected(2)
        command = await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)) and d.threads)
        await d.redeliver(command)  # the same interaction again, to both instances
        card = card_of(d)
        clicks = [
            d.click_of(card, "approval.approve:1", CAROL),
            d.click_of(card, "approval.approve:1", CAROL),  # her double click
            d.click_of(card, "approval.approve:1", DAVE),
        ]
        extra = {"message": card.payload()}
        await asyncio.gather(*(d.dispatch_interaction(c, extra) for c in clicks))
        await d.wait_for(lambda: succeeded(d, card.id), timeout=90)
        await d.redeliver(clicks[0])
        await asyncio.sleep(1.0)  # what a repeat would do, it would have started by now
        assert await first.stop() == 0 and await second.stop() == 0
        assert len(w.rows(ApprovalRequest)) == 1
        votes = w.rows(ApprovalVote)
        assert sorted(v.name for v in votes) == ["carol", "dave"]  # no duplicate vote
        assert [(r.stage, r.state) for r in w.rows(Release)] == [("prod", "succeeded")]
        assert len([m for m in d.in_channel(CHANNEL) if m.buttons or m.id == card.id]) == 1
        for interaction in (command, *clicks):
            assert len(interaction.answers) == 1  # one instance acknowledged each
        thread = "\n".join(m.plain() for m in d.in_channel(card.id))
        assert thread.count("running it") == 1
        check_every_call(d)


async def test_the_database_claim_runs_it_once_when_both_acknowledge(
    tmp_path: Path, database_url: str
) -> None:
    async with discord_world(tmp_path, database_url=database_url) as w:
        w.grant(BOB, "deployer")
        first, second = await w.start(), await w.start()
        d = w.discord
        d.lenient_acks = True
        command = await d.slash(BOB, "lock", project="shop", stage="dev", reason="db migration")
        await d.wait_for(lambda: len(command.answers) == 2)
        await d.wait_for(lambda: any("locked" in m.plain() for m in d.messages.values()))
        await asyncio.sleep(1.0)
        assert await first.stop() == 0 and await second.stop() == 0
        locks = [e for e in w.rows(AuditEntry) if e.action == "lock"]
        assert [(e.outcome, e.user_id) for e in locks] == [("ok", BOB)]
        assert not d.private_to(BOB)  # no "already locked" from a second run
