"""`secrets set|unset|deploy` on a stage that guards secrets: an approval request listing the
names and whether each is new, replaced or removed, never a value; the values wait in this
process's memory only until the approval, a reject or the expiry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.clock import FrozenClock, set_clock, utcnow
from bot.runtime import build_services
from commands.approvals import sweep
from tests.secrets.conftest import secrets_world
from tests.secrets.test_secrets import fly_secrets, machines_of, updates_with
from tests.support import Bot, assert_found_nowhere

PROD = "shop-prod"
VALUES = {"API_TOKEN": "tok-9Vq2-prod-only", "DB_URL": "postgres://u:pw-8Hx@db/prod"}
LINE = "secrets set shop prod API_TOKEN DB_URL"


async def test_the_card_lists_names_and_new_or_replaced_and_approval_sets_them(
    tmp_path: Path,
) -> None:
    async with secrets_world(tmp_path) as w:
        await w.fly.set_secrets(PROD, {"DB_URL": "postgres://old"})
        asked, card = await w.bot.run("bob", LINE, secrets=VALUES)
        assert asked.status == "awaiting", card.all_text()
        text = card.all_text()
        assert "Secrets set on shop-prod: API_TOKEN (new), DB_URL (replaced)" in text
        assert "wait in memory only, until it is approved or expires" in text
        assert "a restart of flybot drops them, and the requester must set them again" in text
        assert [b.label for b in card.public[0].buttons] == ["Approve", "Reject"]
        assert fly_secrets(w, PROD) == {"DB_URL": "postgres://old"}  # nothing yet
        assert set(w.services.held_secrets) == {1}

        done, conversation = await w.bot.run("carol", "approve 1")
        assert done.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert fly_secrets(w, PROD) == VALUES
        version = w.sim.state.apps[PROD].secrets_version
        machines = machines_of(w, PROD)
        assert updates_with(w, PROD, version) == {m.id: 1 for m in machines}
        assert w.services.held_secrets == {}
        everything = card.all_text() + conversation.all_text() + w.bot.outbox().all_text()
        assert "succeeded" in everything
        for value in VALUES.values():
            assert_found_nowhere(value, w.services.engine, w.root, replies=everything)


async def test_a_reject_drops_the_values_and_sets_nothing(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        await w.bot.run("bob", LINE, secrets=VALUES)
        outcome, conversation = await w.bot.run("carol", "reject 1 not today")
        assert outcome.status == "ok", conversation.all_text()
        assert w.services.held_secrets == {} and fly_secrets(w, PROD) == {}
        assert w.calls("Secrets_update") == []


async def test_an_expired_request_drops_the_values(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        clock = FrozenClock(utcnow())
        set_clock(clock)
        await w.bot.run("bob", LINE, secrets=VALUES)
        clock.advance(timedelta(minutes=31))
        await sweep(w.services)
        assert w.services.held_secrets == {} and fly_secrets(w, PROD) == {}


async def test_a_request_decided_on_another_instance_drops_the_values_here(
    tmp_path: Path,
) -> None:
    async with secrets_world(tmp_path) as w:
        await w.bot.run("bob", LINE, secrets=VALUES)
        other = Bot(build_services(w.services.settings))
        outcome, conversation = await other.run("carol", "reject 1")
        assert outcome.status == "ok", conversation.all_text()
        assert set(w.services.held_secrets) == {1}  # this instance has not heard yet
        await sweep(w.services)
        assert w.services.held_secrets == {} and fly_secrets(w, PROD) == {}


async def test_a_restarted_bot_has_no_values_and_the_request_fails(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        await w.bot.run("bob", LINE, secrets=VALUES)
        restarted = Bot(build_services(w.services.settings))
        restarted.services.fly = w.fly
        _, conversation = await restarted.run("carol", "approve 1")
        assert "its secret values are gone" in conversation.all_text()
        assert fly_secrets(w, PROD) == {} and w.calls("Secrets_update") == []


async def test_unset_and_deploy_on_a_guarded_stage_list_the_names(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        await w.fly.set_secrets(PROD, {"OLD": "o"})
        asked, card = await w.bot.run("bob", "secrets unset shop prod OLD --stage")
        assert asked.status == "awaiting", card.all_text()
        assert "Secrets unset on shop-prod: OLD (removed)" in card.all_text()
        assert "Staged only" in card.all_text()
        done, conversation = await w.bot.run("carol", "approve 1")
        assert done.status == "ok", conversation.all_text()
        assert fly_secrets(w, PROD) == {} and w.calls("Machines_update") == []

        asked, card = await w.bot.run("bob", "secrets deploy shop prod")
        assert asked.status == "awaiting", card.all_text()
        assert "Staged secrets to hand out: OLD (removed)" in card.all_text()
        done, conversation = await w.bot.run("carol", "approve 2")
        assert done.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        version = w.sim.state.apps[PROD].secrets_version
        assert updates_with(w, PROD, version) == {m.id: 1 for m in machines_of(w, PROD)}
