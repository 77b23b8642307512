"""An approved request always runs or says why not: its state changes come before any chat,
a request left `approved` is picked up by the sweep, and an `executing` one is judged stuck by
its executor's heartbeat, not by its age."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.clock import FrozenClock, set_clock, utcnow
from bot.runtime import build_services
from bot.settings import Settings
from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, ApprovalVote
from bot.store.principals import IdentityKey, ensure_identity
from commands.approvals import fail_stuck
from commands.port import MessageRef, Reply
from tests.deploy.test_approvals import (
    PEOPLE,
    ask,
    audit_actions,
    people,
    release_count,
    request_row,
)
from tests.flyharness import FAST_ENGINE, fly_client, world
from tests.support import Bot, RecordingConversation


async def test_a_chat_failure_after_the_quorum_does_not_leave_it_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)

        async def chat_down(self: object, message: MessageRef, reply: Reply) -> None:
            raise ConnectionError("the chat platform is down")

        monkeypatch.setattr(RecordingConversation, "update", chat_down)
        await w.bot.run("approver0", "approve 1")
        await w.services.jobs.wait_all()
        assert request_row(w).state == "executed"
        assert release_count(w) == 1 and len(w.calls("Machines_update")) == 6


async def test_the_claim_comes_before_any_chat_about_the_quorum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every card edit and thread line after the quorum finds the request already claimed
    (`executing` or later), never still `approved`: a chat call that hangs or dies there
    cannot hold the run back."""
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        seen: list[tuple[str, str]] = []
        update, post_in_thread = RecordingConversation.update, RecordingConversation.post_in_thread

        async def watched_update(
            self: RecordingConversation, message: MessageRef, r: Reply
        ) -> None:
            seen.append((r.plain().splitlines()[0], request_row(w).state))
            await update(self, message, r)

        async def watched_post(
            self: RecordingConversation, thread: MessageRef, r: Reply
        ) -> MessageRef:
            seen.append((r.plain().splitlines()[0], request_row(w).state))
            return await post_in_thread(self, thread, r)

        monkeypatch.setattr(RecordingConversation, "update", watched_update)
        monkeypatch.setattr(RecordingConversation, "post_in_thread", watched_post)
        await w.bot.run("approver0", "approve 1")
        await w.services.jobs.wait_all()
        assert request_row(w).state == "executed"
        assert any("running it" in line for line, _ in seen), seen
        assert [s for s in seen if s[1] in ("pending", "approved")] == [], seen


async def test_a_slow_but_alive_execution_is_not_failed(tmp_path: Path) -> None:
    clock = FrozenClock(utcnow())
    set_clock(clock)
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        w.sim.inject("Machines_list", latency=1.5, count=2)  # Fly is slow while it plans
        click = asyncio.create_task(w.bot.run("approver0", "approve 1"))
        for _ in range(200):
            if request_row(w).state == "executing":
                break
            await asyncio.sleep(0.02)
        assert request_row(w).state == "executing"
        clock.advance(timedelta(minutes=3))  # older than any fixed window
        for _ in range(100):  # the executor's next heartbeat (every 0.2 s here)
            beat = getattr(request_row(w), "heartbeat_at", None)  # main had no heartbeat
            if beat is not None and beat >= clock.now:
                break
            await asyncio.sleep(0.01)
        assert request_row(w).state == "executing", "the plan finished before the check"
        assert await fail_stuck(w.services.engine, RecordingConversation()) == []
        outcome, conversation = await click
        assert outcome.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert request_row(w).state == "executed" and release_count(w) == 1


async def test_a_request_left_approved_is_run_by_the_sweep(tmp_path: Path) -> None:
    from commands.approvals import sweep

    clock = FrozenClock(utcnow())
    set_clock(clock)
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w)
        approver = ensure_identity(w.services.engine, IdentityKey("shell", "local", "approver0"))
        with session_scope(w.services.engine) as session:  # the quorum, then the process died
            session.add(
                ApprovalVote(request_id=1, principal_id=approver.principal_id, name="approver0")
            )
            session.execute(update(ApprovalRequest).values(state="approved", decided_at=utcnow()))
        await sweep(w.services)
        assert request_row(w).state == "approved"  # not yet: it may still be on its way
        clock.advance(timedelta(minutes=1))
        await sweep(w.services)
        await w.services.jobs.wait_all()
        assert request_row(w).state == "executed"
        assert release_count(w) == 1 and len(w.calls("Machines_update")) == 6
        assert "picked up" in w.bot.outbox("shell").all_text()


def _instance_sweeps(settings: Settings, base_url: str, start: threading.Barrier) -> None:
    """One bot instance in a thread of its own (its own engine, Fly client and event loop,
    as another process would have) running the scheduler's approval sweep once."""
    from commands.approvals import sweep

    services = build_services(settings, FAST_ENGINE)
    assert services.deployer is not None
    fly = fly_client(base_url)
    services.fly = fly
    services.deployer.fly = fly
    Bot(services)  # recording outboxes for the thread's lines

    async def sweep_once() -> None:
        try:
            await sweep(services)
            await services.jobs.wait_all()
        finally:
            await fly.aclose()

    try:
        start.wait(timeout=60)
        asyncio.run(sweep_once())
    finally:
        services.engine.dispose()


async def test_instances_sweeping_a_stalled_approved_request_together_run_it_once(
    tmp_path: Path, database_url: str
) -> None:
    """The approved → executing claim: every instance's sweep finds the same stalled request
    at once; exactly one runs it (on SQLite and on PostgreSQL)."""
    instances = 4
    async with world(tmp_path, admins=PEOPLE, database_url=database_url) as w:
        people(w)
        await ask(w)
        approver = ensure_identity(w.services.engine, IdentityKey("shell", "local", "approver0"))
        with session_scope(w.services.engine) as session:  # the quorum, then the process died
            session.add(
                ApprovalVote(request_id=1, principal_id=approver.principal_id, name="approver0")
            )
            session.execute(
                update(ApprovalRequest).values(
                    state="approved", decided_at=utcnow() - timedelta(minutes=5)
                )
            )
        start = threading.Barrier(instances)
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=instances) as pool:
            await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool, _instance_sweeps, w.services.settings, w.base_url, start
                    )
                    for _ in range(instances)
                )
            )
        actions = audit_actions(w)
        assert [a for a in actions if a[0] == "approval executed"] == [
            ("approval executed", "bob", "executed")
        ], actions
        assert [a for a in actions if a[0] == "approval not executed"] == [], actions
        assert request_row(w).state == "executed"
        assert release_count(w) == 1 and len(w.calls("Releases_create")) == 1
        assert len(w.calls("Machines_update")) == 6
