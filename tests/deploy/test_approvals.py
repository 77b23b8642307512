"""Approvals in the thread, end to end: the deploy runs (or not) against the Fly simulator."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import FrozenClock, set_clock, utcnow
from bot.runtime import build_services
from bot.settings import Settings
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, ApprovalVote, AuditEntry, Release
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands.approvals import expire_due
from tests.flyharness import FAST_ENGINE, NEW, World, fly_client, world
from tests.support import Bot, RecordingConversation

PEOPLE = ("shell:local:alice",)


def people(w: World, approvers: int = 3) -> None:
    """bob deploys; carol, dave, … approve; erin is only a deployer."""
    engine = w.services.engine
    for name, role in [("bob", "deployer"), ("erin", "deployer")] + [
        (f"approver{n}", "approver") for n in range(approvers)
    ]:
        identity = ensure_identity(engine, IdentityKey("shell", "local", name), name)
        add_grant(engine, identity.principal_id, role, "shop", "*", None)


def request_row(w: World) -> ApprovalRequest:
    with session_scope(w.services.engine) as session:
        [row] = session.exec(select(ApprovalRequest)).all()
        return row


def audit_actions(w: World) -> list[tuple[str, str, str]]:
    with session_scope(w.services.engine) as session:
        rows = session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()  # type: ignore[arg-type]
        return [(r.action, r.display_name, r.outcome) for r in rows]


def release_count(w: World) -> int:
    with session_scope(w.services.engine) as session:
        return len(session.exec(select(Release)).all())


async def ask(w: World, line: str = f"deploy shop prod {NEW}") -> RecordingConversation:
    outcome, conversation = await w.bot.run("bob", line)
    assert outcome.status == "awaiting", conversation.all_text()
    return conversation


async def test_a_guarded_deploy_waits_in_its_thread_with_buttons(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        conversation = await ask(w)
        [card] = conversation.public
        assert card.title and "#1 deploy shop/prod requested by bob" in card.title
        assert [b.command for b in card.buttons] == ["approve 1", "reject 1"]
        assert [b.custom_id for b in card.buttons] == ["approval.approve:1", "approval.reject:1"]
        # alice is an admin of everything; bob asked, so he is not listed
        assert ("Can approve", "alice, approver0, approver1, approver2") in card.fields
        assert ("Needs", "1 approval by someone with the approver role, not the requester") in (
            card.fields
        )
        assert w.calls("Machines_update") == [] and release_count(w) == 0


async def test_self_approval_and_approval_without_the_role_are_refused_and_audited(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        own, conversation = await w.bot.run("bob", "approve 1")
        assert own.status == "denied"
        assert "You asked for #1; someone else has to approve it." in conversation.all_text()
        weak, conversation = await w.bot.run("erin", "approve 1")
        assert weak.status == "denied"
        assert "needs approver on shop/prod; you have deployer there" in conversation.all_text()
        actions = audit_actions(w)
        assert ("approve", "bob", "denied") in actions and ("approve", "erin", "denied") in actions
        assert request_row(w).state == "pending" and release_count(w) == 0


async def test_a_quorum_of_two_needs_two_distinct_approvers(tmp_path: Path) -> None:
    async with world(tmp_path, approvals=2, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        first, conversation = await w.bot.run("approver0", "approve 1")
        assert first.status == "ok" and "1/2" in conversation.all_text()
        again, conversation = await w.bot.run("approver0", "approve 1")
        assert again.status == "error" and "already approved" in conversation.all_text()
        assert release_count(w) == 0
        second, conversation = await w.bot.run("approver1", "approve 1")
        assert second.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert request_row(w).state == "executed"
        with session_scope(w.services.engine) as session:
            [release] = session.exec(select(Release)).all()
        assert release.state == "succeeded" and release.approvers == "approver0, approver1"
        actions = audit_actions(w)
        assert ("approval requested", "bob", "requested") in actions
        assert ("approval given", "approver0", "approved") in actions
        assert ("approval executed", "bob", "executed") in actions


async def test_a_click_stopped_after_its_vote_completes_the_quorum_when_clicked_again(
    tmp_path: Path,
) -> None:
    """The vote that made the quorum was written, then the click stopped (a busy SQLite
    file, a dead process) before the request moved on: clicking again must not answer only
    "already approved" and leave it pending until it expires."""
    async with world(tmp_path, approvals=2, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        engine = w.services.engine
        for name in ("approver0", "approver1"):
            identity = ensure_identity(engine, IdentityKey("shell", "local", name), name)
            with session_scope(engine) as session:
                session.add(
                    ApprovalVote(request_id=1, principal_id=identity.principal_id, name=name)
                )
        again, conversation = await w.bot.run("approver1", "approve 1")
        assert again.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert request_row(w).state == "executed"
        assert release_count(w) == 1
        # A vote repeated after that is still told it counts once, and runs nothing.
        late, conversation = await w.bot.run("approver0", "approve 1")
        assert late.status == "error" and "is executed" in conversation.all_text()


async def test_a_click_again_while_the_first_click_moves_the_request_is_told_it_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same approver clicks twice; the second click finds its vote already written and
    the request still pending, and then the first click moves it on: the second is told
    that its vote counts once (it used to get no answer at all), and runs nothing."""
    import commands.approvals as approvals_module
    from bot.store.approvals import move_request

    async with world(tmp_path, approvals=1, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        engine = w.services.engine
        identity = ensure_identity(engine, IdentityKey("shell", "local", "approver0"))
        with session_scope(engine) as session:  # the first click's vote
            session.add(
                ApprovalVote(request_id=1, principal_id=identity.principal_id, name="approver0")
            )
        votes_of = approvals_module._votes

        def first_click_moves_on(engine_: object, request_id: int) -> list[ApprovalVote]:
            # the first click's compare-and-set lands while the second reads the votes
            move_request(engine, request_id, ("pending",), "approved")
            return votes_of(engine_, request_id)  # type: ignore[arg-type]

        monkeypatch.setattr(approvals_module, "_votes", first_click_moves_on)
        again, conversation = await w.bot.run("approver0", "approve 1")
        await w.services.jobs.wait_all()
        assert again.status == "error", (again, conversation.all_text())
        assert "You already approved #1; each approver counts once." in conversation.all_text()
        assert request_row(w).state == "approved"  # left to the first click, which runs it
        assert release_count(w) == 0 and w.calls("Machines_update") == []


CLICKERS = 20
DELIVERIES = 3  # Slack retries a delivery; a retry can land on another instance
BUSY_RETRIES = 20


def _instance_clicks(
    settings: Settings,
    base_url: str,
    deliveries: list[tuple[str, str]],
    start: threading.Barrier,
) -> list[tuple[str, str, str, str]]:
    """One bot instance in a thread of its own: its own database engine and sessions, its own
    Fly client and event loop, as a second process would have. It takes `deliveries`
    (approver, delivery key) all at once, as soon as every instance is ready."""
    services = build_services(settings, FAST_ENGINE)
    assert services.deployer is not None
    fly = fly_client(base_url)
    services.fly = fly
    services.deployer.fly = fly
    bot = Bot(services)

    async def deliver(user: str, key: str) -> tuple[str, str, str, str]:
        outcome, _ = await bot.run(user, "approve 1", dedupe_key=key)
        again = 0
        # Twenty instances writing one SQLite file: a click can be told "busy, try again"
        # (the loop waits 250 ms at most), and then the person clicks again: a new delivery.
        while outcome.message.startswith("The database is busy") and again < BUSY_RETRIES:
            again += 1
            await asyncio.sleep(0.05 * again)
            outcome, _ = await bot.run(user, "approve 1", dedupe_key=f"{key}-again-{again}")
        return (user, key, outcome.status, outcome.message)

    async def click_all() -> list[tuple[str, str, str, str]]:
        try:
            results = await asyncio.gather(*(deliver(user, key) for user, key in deliveries))
            await services.jobs.wait_all()
            return list(results)
        finally:
            await fly.aclose()

    try:
        start.wait(timeout=60)
        return asyncio.run(click_all())
    finally:
        services.engine.dispose()


async def test_twenty_concurrent_clicks_and_repeated_deliveries_deploy_once(
    tmp_path: Path, database_url: str
) -> None:
    """Twenty approvers click at once on a quorum of two, each click delivered three times,
    on twenty bot instances that are threads with their own engines (on SQLite and on
    PostgreSQL): the votes, the quorum's compare-and-set and the claim for execution race
    for real in the database. Exactly one instance runs the deploy, once."""
    async with world(tmp_path, approvals=2, admins=PEOPLE, database_url=database_url) as w:
        people(w, approvers=CLICKERS)
        await ask(w)
        # Instance n takes approver n's click and the retries of approvers n-1 and n-2.
        plan = [
            [
                (f"approver{(n - k) % CLICKERS}", f"click-{(n - k) % CLICKERS}")
                for k in range(DELIVERIES)
            ]
            for n in range(CLICKERS)
        ]
        start = threading.Barrier(CLICKERS)
        loop = asyncio.get_running_loop()
        # The simulator answers on this loop; the instances block only their own threads.
        with ThreadPoolExecutor(max_workers=CLICKERS) as pool:
            results = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool, _instance_clicks, w.services.settings, w.base_url, part, start
                    )
                    for part in plan
                )
            )
        statuses = [status for part in results for _, _, status, _ in part]
        assert len(statuses) == CLICKERS * DELIVERIES
        assert statuses.count("duplicate") == CLICKERS * (DELIVERIES - 1), statuses
        # The first two clicks make the quorum; a later one may find #1 decided already.
        late = [m for part in results for _, _, s, m in part if s not in ("duplicate", "ok")]
        assert all(
            m.startswith("Request #1 is ") or m.startswith("You already approved #1") for m in late
        ), late
        executed = [a for a in audit_actions(w) if a[0] == "approval executed"]
        assert len(executed) == 1, audit_actions(w)
        assert [a for a in audit_actions(w) if a[0] == "approval not executed"] == []
        assert release_count(w) == 1
        assert len(w.calls("Releases_create")) == 1
        assert len(w.calls("Machines_update")) == 6  # each machine updated exactly once
        assert request_row(w).state == "executed"


async def test_a_restart_between_request_and_approval_loses_nothing(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        restarted = Bot(build_services(w.services.settings))
        restarted.services.fly = w.fly
        assert restarted.services.deployer is not None
        restarted.services.deployer.fly = w.fly
        outcome, conversation = await restarted.run("approver0", "approve 1")
        assert outcome.status == "ok", conversation.all_text()
        await restarted.services.jobs.wait_all()
        assert request_row(w).state == "executed"
        assert len(w.calls("Machines_update")) == 6


async def test_an_unanswered_request_expires_with_a_controlled_clock(tmp_path: Path) -> None:
    clock = FrozenClock(utcnow())
    set_clock(clock)
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        clock.advance(timedelta(minutes=29))
        assert await expire_due(w.services.engine, RecordingConversation()) == []
        clock.advance(timedelta(minutes=2))
        told = RecordingConversation()
        assert await expire_due(w.services.engine, told) == [1]
        assert told.public[-1].buttons == ()  # the card lost its buttons
        assert "expired" in told.all_text()
        late, conversation = await w.bot.run("approver0", "approve 1")
        assert late.status == "error" and "Request #1 is expired" in conversation.all_text()
        assert ("approval expired", "flybot", "expired") in audit_actions(w)
        assert release_count(w) == 0


async def test_an_edited_fly_toml_voids_the_request_before_it_runs(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        prod = w.root / "shop" / "prod.fly.toml"
        prod.write_text(prod.read_text().replace('STAGE = "prod"', 'STAGE = "production"'))
        outcome, conversation = await w.bot.run("approver0", "approve 1")
        assert "is void: the plan changed" in conversation.all_text()
        assert request_row(w).state == "voided"
        assert release_count(w) == 0 and w.calls("Machines_update") == []
        assert ("approval voided", "flybot", "voided") in audit_actions(w)
        del outcome


async def test_a_new_image_in_the_previous_stage_voids_a_promotion(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w, "deploy shop prod")  # promote whatever staging runs
        await w.bot.run("bob", f"deploy shop staging {NEW} --strategy immediate")
        await w.services.jobs.wait_all()
        _, conversation = await w.bot.run("approver0", "approve 1")
        assert "is void" in conversation.all_text()
        assert request_row(w).state == "voided"


async def test_one_reject_ends_it_with_the_reason(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        outcome, conversation = await w.bot.run("approver0", "reject 1 not during the sale")
        assert outcome.status == "ok"
        assert "rejected by approver0: not during the sale" in conversation.all_text()
        late, _ = await w.bot.run("approver1", "approve 1")
        assert late.status == "error"
        assert request_row(w).state == "rejected"
        assert ("approval rejected", "approver0", "rejected") in audit_actions(w)


async def test_a_lock_at_run_time_refuses_the_approved_request(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        await w.bot.run("erin", 'lock shop prod "incident"')
        _, conversation = await w.bot.run("approver0", "approve 1")
        assert "shop/prod is locked by erin" in conversation.all_text()
        row = request_row(w)
        assert row.state == "failed" and "incident" in row.reason
        assert release_count(w) == 0


async def test_pending_lists_open_requests(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        _, conversation = await w.bot.run("approver0", "pending shop")
        assert "#1 deploy shop/prod by bob, 0/1 approvals" in conversation.all_text()


async def test_the_scheduler_expires_requests_and_tells_the_thread(tmp_path: Path) -> None:
    from bot.runtime import start_scheduler

    clock = FrozenClock(utcnow())
    set_clock(clock)
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        told = w.bot.outbox("shell")
        scheduler = start_scheduler(w.services, every=0.05)
        try:
            clock.advance(timedelta(minutes=31))
            for _ in range(200):
                if request_row(w).state == "expired":
                    break
                await asyncio.sleep(0.02)
        finally:
            scheduler.shutdown(wait=False)
        assert request_row(w).state == "expired"
        assert "This request expired" in told.all_text()


async def test_a_request_left_executing_by_a_dead_process_is_failed_and_told(
    tmp_path: Path,
) -> None:
    from sqlalchemy import update

    from commands.approvals import fail_stuck

    clock = FrozenClock(utcnow())
    set_clock(clock)
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        with session_scope(w.services.engine) as session:  # as if a process died right here
            session.execute(update(ApprovalRequest).values(state="executing", decided_at=utcnow()))
        told = RecordingConversation()
        assert await fail_stuck(w.services.engine, told) == []
        clock.advance(timedelta(minutes=3))
        assert await fail_stuck(w.services.engine, told) == [1]
        assert request_row(w).state == "failed"
        assert "flybot stopped while starting it; ask again" in told.all_text()
