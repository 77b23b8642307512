"""`/fly certs …` against the simulator: the DNS records answered in a thread, the scheduled
re-check telling that thread pending → active, the expiry warnings, and bad input."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bot.clock import FrozenClock, set_clock, utcnow
from bot.runtime.scheduler import start_scheduler
from commands.certs import RECHECK_EVERY, recheck_pending, warn_expiring
from tests.certs.conftest import CertWorld, cert_world, watch_row
from tests.support import snapshot


async def add(world: CertWorld, host: str, user: str = "bob", stage: str = "prod") -> str:
    outcome, conversation = await world.bot.run(user, f"certs add ping-go {stage} {host}")
    assert outcome.status == "ok", conversation.all_text()
    return conversation.all_text()


async def set_dns(world: CertWorld, app: str, host: str) -> None:
    async with httpx.AsyncClient(base_url=world.base_url) as http:
        r = await http.post(f"/__sim/certificates/{app}/{host}/dns", json={"set": True})
        assert r.status_code == 200, r.text


def frozen() -> FrozenClock:
    clock = FrozenClock(utcnow())
    set_clock(clock)
    return clock


async def test_add_answers_with_the_dns_records_in_a_thread(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        outcome, conversation = await world.bot.run("bob", "certs add ping-go prod www.example.com")
        assert outcome.status == "ok", conversation.all_text()
        [head] = conversation.public  # the thread's parent message
        app = world.sim.state.apps["ping-go-prod"]
        assert "www.example.com" in (head.title or "") and "ping-go/prod" in (head.title or "")
        code = "\n".join(head.code)
        assert f"A     www.example.com → {app.ipv4}" in code
        assert f"AAAA  www.example.com → {app.ipv6}" in code
        assert "CNAME www.example.com → ping-go-prod.fly.dev" in code
        assert "CNAME _acme-challenge.www.example.com → www.example.com." in code
        assert ".flydns.net" in code
        row = watch_row(world.bot, "www.example.com")
        assert row is not None and row.state == "pending" and row.thread_id
        assert "www.example.com" in app.certificates


async def test_an_apex_gets_no_cname_and_a_wildcard_needs_the_challenge(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        apex = await add(world, "Example.COM.")
        assert "A     example.com →" in apex and "CNAME example.com →" not in apex
        assert "CNAME _acme-challenge.example.com →" in apex
        wildcard = await add(world, "*.example.org")
        assert "CNAME _acme-challenge.example.org" in wildcard or "_acme-challenge.*" in wildcard
        assert "required for a wildcard" in wildcard


async def test_pending_to_active_is_told_in_its_thread_by_the_scheduled_job(
    tmp_path: Path,
) -> None:
    """Must show: the scheduled re-check reports validation errors once, then active once."""
    async with cert_world(tmp_path) as world:
        clock = frozen()
        await add(world, "www.example.com")
        services = world.bot.services

        assert await recheck_pending(services) == 1
        errors = world.thread_of(world.bot, "www.example.com")
        assert len(errors) == 1 and "Validation of www.example.com is failing" in errors[0]
        assert "ping-go-prod.fly.dev" in errors[0]  # Fly's remediation

        clock.advance(RECHECK_EVERY)
        assert await recheck_pending(services) == 1
        assert len(world.thread_of(world.bot, "www.example.com")) == 1  # same errors: quiet

        await set_dns(world, "ping-go-prod", "www.example.com")
        clock.advance(RECHECK_EVERY)
        assert await recheck_pending(services) == 1
        told = world.thread_of(world.bot, "www.example.com")
        assert len(told) == 2 and "✓ The certificate for www.example.com is active" in told[1]
        row = watch_row(world.bot, "www.example.com")
        assert row is not None and row.state == "active" and row.expires_at is not None

        clock.advance(RECHECK_EVERY)
        assert await recheck_pending(services) == 0  # active ones are not re-checked
        assert len(world.thread_of(world.bot, "www.example.com")) == 2
        assert len(world.calls("App_Certificates_check")) == 3


async def test_the_runtime_schedules_both_certificate_jobs(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        scheduler = start_scheduler(world.bot.services)
        try:
            ids = {job.id for job in scheduler.get_jobs()}
        finally:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)
        assert {"certs-recheck", "certs-expiry"} <= ids


async def test_two_instances_check_each_pending_certificate_once(
    tmp_path: Path, database_url: str
) -> None:
    async with cert_world(tmp_path, database_url) as world:
        frozen()
        await add(world, "a.example.com")
        await add(world, "b.example.com")
        await set_dns(world, "ping-go-prod", "a.example.com")
        await set_dns(world, "ping-go-prod", "b.example.com")
        other = world.instance()
        world.sim.clear_calls()
        checked = await asyncio.gather(
            recheck_pending(world.bot.services), recheck_pending(other.services)
        )
        assert sorted(checked) == [0, 2]
        assert len(world.calls("App_Certificates_check")) == 2
        for host in ("a.example.com", "b.example.com"):
            told = world.thread_of(world.bot, host) + world.thread_of(other, host)
            assert len(told) == 1 and "is active" in told[0]


async def test_each_change_is_told_once_even_when_both_instances_look(tmp_path: Path) -> None:
    """The period claim aside (every=0 lets both scan), the row's compare-and-set decides."""
    async with cert_world(tmp_path) as world:
        frozen()
        await add(world, "www.example.com")
        await set_dns(world, "ping-go-prod", "www.example.com")
        other = world.instance()
        await asyncio.gather(
            *(
                recheck_pending(bot.services, every=timedelta(0))
                for bot in (world.bot, other, world.bot, other)
            )
        )
        told = world.thread_of(world.bot, "www.example.com") + world.thread_of(
            other, "www.example.com"
        )
        assert [t for t in told if "is active" in t] == told and len(told) == 1


async def test_expiry_warning_at_14_days_then_3_each_once(tmp_path: Path) -> None:
    """Must show: with a controlled clock, the 14-day warning once, then the 3-day one."""
    async with cert_world(tmp_path) as world:
        clock = frozen()
        await add(world, "www.example.com")
        await set_dns(world, "ping-go-prod", "www.example.com")
        await recheck_pending(world.bot.services)
        row = watch_row(world.bot, "www.example.com")
        assert row is not None and row.expires_at is not None
        expires = row.expires_at
        thread = lambda: world.thread_of(world.bot, "www.example.com")  # noqa: E731
        assert len(thread()) == 1  # "active"

        clock.now = expires - timedelta(days=15)
        assert await warn_expiring(world.bot.services) == 0
        clock.advance(timedelta(days=1, hours=1))  # 13 days 23 hours left
        assert await warn_expiring(world.bot.services) == 1
        [warning] = thread()[1:]
        assert "expires" in warning and "in 13 days (14-day warning)" in warning
        assert "/fly certs check ping-go prod www.example.com" in warning

        assert await warn_expiring(world.bot.services) == 0  # same day: the run is claimed
        for _ in range(10):  # each following day, down to 3 days 23 hours left: not twice
            clock.advance(timedelta(days=1))
            assert await warn_expiring(world.bot.services) == 0
        assert len(thread()) == 2

        clock.advance(timedelta(days=1, hours=1))  # 2 days 22 hours left
        assert await warn_expiring(world.bot.services) == 1
        assert "(3-day warning)" in thread()[2]
        clock.advance(timedelta(days=1))
        assert await warn_expiring(world.bot.services) == 0
        assert len(thread()) == 3


async def test_a_certificate_first_seen_near_expiry_hears_only_the_nearest_warning(
    tmp_path: Path,
) -> None:
    async with cert_world(tmp_path) as world:
        clock = frozen()
        await add(world, "www.example.com")
        await set_dns(world, "ping-go-prod", "www.example.com")
        await recheck_pending(world.bot.services)
        row = watch_row(world.bot, "www.example.com")
        assert row is not None and row.expires_at is not None
        clock.now = row.expires_at - timedelta(days=2)
        assert await warn_expiring(world.bot.services) == 1
        clock.advance(timedelta(days=1))
        assert await warn_expiring(world.bot.services) == 0
        warnings = world.thread_of(world.bot, "www.example.com")[1:]
        assert len(warnings) == 1 and "(3-day warning)" in warnings[0]


async def test_list_show_check_and_remove(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        await add(world, "www.example.com")
        bot = world.bot
        _, listed = await bot.run("vic", "certs list ping-go prod")
        assert "www.example.com  pending_validation  (flybot watches it)" in listed.all_text()

        _, shown = await bot.run("vic", "certs show ping-go prod www.example.com")
        text = shown.all_text()
        assert "Status: pending_validation" in text and "ping-go-prod.fly.dev" in text

        _, checked = await bot.run("vic", "certs check ping-go prod www.example.com")
        assert "✗ No A/AAAA or CNAME record for www.example.com" in checked.all_text()
        await set_dns(world, "ping-go-prod", "www.example.com")
        _, checked = await bot.run("vic", "certs check ping-go prod")
        assert "www.example.com  active" in checked.all_text()
        told = world.thread_of(bot, "www.example.com")  # a check by hand tells the thread too
        assert [t for t in told if "is active" in t] == [told[-1]]

        _, shown = await bot.run("vic", "certs show ping-go prod www.example.com")
        assert "Expires: " in shown.all_text() and "Let's Encrypt" in shown.all_text()

        outcome, removed = await bot.run("bob", "certs remove ping-go prod www.example.com")
        assert outcome.status == "ok", removed.all_text()
        assert "www.example.com" not in world.sim.state.apps["ping-go-prod"].certificates
        assert "www.example.com was removed by bob" in world.thread_of(bot, "www.example.com")[-1]
        row = watch_row(bot, "www.example.com")
        assert row is not None and row.state == "removed"
        _, listed = await bot.run("vic", "certs list ping-go prod")
        assert "www.example.com" not in listed.all_text()


async def test_a_guarded_stage_asks_for_approval_before_adding(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        bot = world.bot
        outcome, _ = await bot.run("bob", "certs add hello prod shop.example.com")
        assert outcome.status == "awaiting"
        assert world.calls("App_Certificates_acme_create") == []
        approved, conversation = await bot.run("carol", "approve 1")
        assert approved.status == "ok", conversation.all_text()
        assert "shop.example.com" in world.sim.state.apps["hello-prod"].certificates
        row = watch_row(bot, "shop.example.com")
        assert row is not None and row.thread_id  # the approval card's thread
        outcome, _ = await bot.run("bob", "certs remove hello prod shop.example.com")
        assert outcome.status == "awaiting"
        assert "shop.example.com" in world.sim.state.apps["hello-prod"].certificates


BAD_LINES = [
    ("certs add nope prod www.example.com", "Unknown project 'nope'"),
    ("certs add ping-go qa www.example.com", "Unknown stage 'qa' of ping-go"),
    ("certs add ping-go prod localhost", "is not a full hostname"),
    ("certs add ping-go prod https://www.example.com/", "is a URL"),
    ("certs add ping-go prod 10.0.0.1", "is an IP address"),
    ("certs add ping-go prod -www.example.com", "is not a hostname"),
    ("certs add ping-go prod www..example.com", "is not a hostname"),
    ("certs add ping-go prod www.exa_mple.com", "is not a hostname"),
    ("certs add ping-go prod " + "a" * 64 + ".example.com", "is not a hostname"),
    ("certs add ping-go prod " + "abcdefgh." * 30 + "com", "longer than 253"),
    ("certs add ping-go prod www.example.123", "numeric top-level"),
    ("certs add ping-go prod", "hostname"),
    ("certs show ping-go prod nothere.example.com", "no certificate for nothere.example.com"),
    ("certs remove ping-go prod nothere.example.com", "no certificate for nothere.example.com"),
]


@pytest.mark.parametrize(("line", "said"), BAD_LINES, ids=[b[0][:60] for b in BAD_LINES])
async def test_bad_input_gets_one_line_and_changes_nothing(
    tmp_path: Path, line: str, said: str
) -> None:
    async with cert_world(tmp_path) as world:
        before = snapshot(world.bot.engine)
        before.pop("audit_entry")
        outcome, conversation = await world.bot.run("bob", line)
        assert outcome.status in ("usage", "error"), conversation.all_text()
        [reply] = conversation.private
        assert conversation.public == [] and "\n" not in reply.plain()
        assert said in reply.plain()
        after = snapshot(world.bot.engine)
        after.pop("audit_entry")
        assert after == before
        assert world.calls("App_Certificates_acme_create") == []
        assert world.calls("App_Certificates_delete") == []
        assert all(not app.certificates for app in world.sim.state.apps.values())


@pytest.mark.parametrize("status", [429, 500])
async def test_a_fly_failure_is_one_line_and_changes_nothing(tmp_path: Path, status: int) -> None:
    async with cert_world(tmp_path) as world:
        world.sim.inject("Certificates_create", status=status)
        before = snapshot(world.bot.engine)
        before.pop("audit_entry")
        outcome, conversation = await world.bot.run("bob", "certs add ping-go prod www.example.com")
        assert outcome.status == "error"
        [reply] = conversation.private
        assert conversation.public == [] and "\n" not in reply.plain()
        assert f"-> {status}" in reply.plain() and "certificates" in reply.plain()
        after = snapshot(world.bot.engine)
        after.pop("audit_entry")
        assert after == before
        assert not world.sim.state.apps["ping-go-prod"].certificates


async def test_a_failing_recheck_waits_for_the_next_period(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        clock = frozen()
        await add(world, "www.example.com")
        await set_dns(world, "ping-go-prod", "www.example.com")
        world.sim.inject("Certificates_check", status=500)
        assert await recheck_pending(world.bot.services) == 1
        assert world.thread_of(world.bot, "www.example.com") == []
        world.sim.clear_faults()
        clock.advance(RECHECK_EVERY)
        await recheck_pending(world.bot.services)
        assert "is active" in world.thread_of(world.bot, "www.example.com")[0]


async def test_a_hostname_another_app_holds_is_refused_in_one_line(tmp_path: Path) -> None:
    async with cert_world(tmp_path) as world:
        await add(world, "www.example.com", stage="dev")
        before = snapshot(world.bot.engine)
        before.pop("audit_entry")
        outcome, conversation = await world.bot.run("bob", "certs add ping-go prod www.example.com")
        assert outcome.status == "error"
        [reply] = conversation.private
        assert "\n" not in reply.plain() and "already in use by another app" in reply.plain()
        after = snapshot(world.bot.engine)
        after.pop("audit_entry")
        assert after == before
        assert not world.sim.state.apps["ping-go-prod"].certificates


@pytest.mark.parametrize("status", [429, 500])
async def test_a_fly_failure_on_remove_keeps_the_certificate_and_its_watch(
    tmp_path: Path, status: int
) -> None:
    async with cert_world(tmp_path) as world:
        await add(world, "www.example.com")
        world.sim.inject("App_Certificates_delete", status=status)
        before = snapshot(world.bot.engine)
        before.pop("audit_entry")
        outcome, conversation = await world.bot.run(
            "bob", "certs remove ping-go prod www.example.com"
        )
        assert outcome.status == "error"
        [reply] = conversation.private
        assert "\n" not in reply.plain() and f"-> {status}" in reply.plain()
        after = snapshot(world.bot.engine)
        after.pop("audit_entry")
        assert after == before
        assert "www.example.com" in world.sim.state.apps["ping-go-prod"].certificates
        assert world.thread_of(world.bot, "www.example.com") == []


async def test_a_check_adopts_a_certificate_flybot_did_not_add(tmp_path: Path) -> None:
    """One added with flyctl has no thread: a check opens one, and the warnings go there."""
    async with cert_world(tmp_path) as world:
        frozen()
        with world.sim.lock:
            world.sim.state.add_certificate("ping-go-prod", "legacy.example.com")
        world.sim.set_certificate_issued("ping-go-prod", "legacy.example.com", days_ago=80)
        assert watch_row(world.bot, "legacy.example.com") is None
        outcome, conversation = await world.bot.run(
            "vic", "certs check ping-go prod legacy.example.com"
        )
        assert outcome.status == "ok", conversation.all_text()
        [head] = conversation.public
        assert "This thread hears when it is issued and before it expires" in head.plain()
        row = watch_row(world.bot, "legacy.example.com")
        assert row is not None and row.state == "active" and row.thread_id
        assert await warn_expiring(world.bot.services) == 1
        [warning] = world.thread_of(world.bot, "legacy.example.com")
        assert "(14-day warning)" in warning
        _, again = await world.bot.run("vic", "certs check ping-go prod legacy.example.com")
        assert again.public == [] or "This thread hears" not in again.all_text()
