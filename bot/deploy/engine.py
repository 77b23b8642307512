"""The deploy engine: leases, strategies, health waits, rollback, and the durable job row.

It reports through a `DeployReporter` (the command layer turns that into a thread), and keeps
its state in the `release` table so a restarted bot knows what was left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import math
import re
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from bot import metrics
from bot.clock import utcnow
from bot.deploy.flytoml import parse_go_duration
from bot.deploy.images import without_digest
from bot.deploy.plan import GROUP_KEY, DeployPlan, GroupPlan
from bot.deploy.timing import EngineTiming
from bot.durations import format_elapsed
from bot.fly import (
    LAUNCH_ID_KEY,
    FlyAPIError,
    FlyClient,
    LeaseHeldError,
    Machine,
    MachineEvent,
    NotFoundError,
)
from bot.fly.models import CheckStatus
from bot.instance import HOST, INSTANCE_ID
from bot.ops.logs import FAILURE_LINES, failure_report
from bot.store.engine import session_scope
from bot.store.models import ACTIVE_DEPLOY_STATES, Release

log = logging.getLogger(__name__)

RELEASE_COMMAND_GROUP = "fly_app_release_command"


def instance_id() -> str:
    """This process's id (see bot.instance): no other process shares it."""
    return INSTANCE_ID


async def settle(steps: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run steps side by side and let every one finish before raising the first failure.

    A plain gather would raise while sibling updates are still in flight, so a rollback
    could start before it knows every machine that changed.
    """
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class DeployReporter(Protocol):
    """How a deploy tells people. `status` (optional) is the one line of what is being
    waited on now: a reporter edits it in place, throttled."""

    async def step(self, text: str, tone: str = "info") -> None: ...

    async def progress(self, done: int, total: int) -> None: ...

    async def flush(self, final: bool = False) -> None:
        """A batch ended (or, with `final`, the deploy): post what is worth posting."""
        ...


# A reporter may also have `logs(head, lines)`: a failing machine's log lines, shown as a
# block of their own (else they arrive as steps), and `status(text)` (see above).


class _SafeReporter:
    """Reporting never fails a deploy: a reporter that raises is logged, and its lines are
    kept and offered again at the next call, so a chat outage delays lines, never loses
    them (and never stops the roll-out)."""

    def __init__(self, inner: DeployReporter) -> None:
        self.inner = inner
        self.backlog: list[tuple[str, str]] = []
        # One drain at a time: the machines of a batch report side by side, and a second
        # drain while the first's post is in flight would post the head line again.
        self._draining = asyncio.Lock()

    async def step(self, text: str, tone: str = "info") -> None:
        self.backlog.append((text, tone))
        await self._drain()

    async def _drain(self) -> bool:
        async with self._draining:
            while self.backlog:
                text, tone = self.backlog[0]
                try:
                    await self.inner.step(text, tone)
                except Exception:
                    log.warning("deploy reporter failed; the line is kept for later", exc_info=True)
                    return False
                self.backlog.pop(0)
            return True

    async def progress(self, done: int, total: int) -> None:
        try:
            await self.inner.progress(done, total)
        except Exception:
            log.warning("deploy reporter failed to show progress", exc_info=True)

    async def status(self, text: str) -> None:
        show = getattr(self.inner, "status", None)
        if show is None:
            return
        try:
            await show(text)
        except Exception:
            log.warning("deploy reporter failed to show a status", exc_info=True)

    async def flush(self, final: bool = False) -> None:
        if not await self._drain():
            return
        try:
            await self.inner.flush(final)
        except Exception:
            log.warning("deploy reporter failed to flush", exc_info=True)

    async def logs(self, head: str, lines: Sequence[str]) -> None:
        show = getattr(self.inner, "logs", None)
        if show is None or not await self._drain():
            await self.step(head, "error")
            for line in lines:
                await self.step(f"    {line}", "error")
            return
        try:
            await show(head, tuple(lines))
        except Exception:
            log.warning("deploy reporter failed to show a machine's logs", exc_info=True)


class DeployBusy(Exception):
    """Another deploy of the same app is queued or running."""

    def __init__(self, holder: Release) -> None:
        self.holder = holder
        super().__init__(
            f"{holder.app} is being {'scaled' if holder.kind == 'scale' else 'deployed'} by "
            f"{holder.requester_name or 'someone'} since "
            f"{holder.created_at:%H:%M} UTC (v{holder.version}, {holder.state})."
        )


class DeployInterrupted(Exception):
    """The process is stopping: the roll-out ends at a safe point, between two machine
    changes, with no rollback (the next deploy, or a person, picks up from there)."""


class DeployFailed(Exception):
    """The roll-out stopped. The text says which machine and why (with check output)."""

    def __init__(self, message: str, machine_id: str | None = None) -> None:
        self.machine_id = machine_id
        super().__init__(message)


@dataclass
class _Lease:
    nonce: str
    expires: float  # time.monotonic() when it runs out, as last granted
    lost: str = ""  # why it can no longer be used, once it cannot


class _Leases:
    """A deploy's machine leases. Taken with a description no other holder uses (so a lost
    answer is settled by reading the lease back), refreshed side by side with a budget well
    inside the TTL, released when the deploy ends. A lease that is lost (taken over, run out)
    stops the roll-out before its machine is touched."""

    def __init__(self, fly: FlyClient | None, app: str, ttl: int, description: str) -> None:
        self.fly = fly
        self.app = app
        self.ttl = ttl
        self.description = description
        self.held: dict[str, _Lease] = {}

    @property
    def budget(self) -> float:
        """The most one refresh may take, retries included: a third of the TTL (at most
        10 s), so a lease refreshed with two budgets left survives a round that fails
        outright."""
        return max(1.0, min(self.ttl / 3, 10.0))

    def as_json(self) -> str:
        return json.dumps({m: lease.nonce for m, lease in self.held.items()})

    async def take(self, machine_id: str) -> None:
        assert self.fly is not None
        asked = time.monotonic()
        try:
            lease = await self.fly.acquire_lease(
                self.app, machine_id, ttl=self.ttl, description=self.description
            )
        except LeaseHeldError as exc:
            raise DeployFailed(
                f"machine {machine_id} is held by someone else's lease: {exc.message}. Nothing "
                "was changed; try again when that work ends.",
                machine_id,
            ) from None
        self.held[machine_id] = _Lease(lease.nonce or "", asked + self.ttl)

    def nonce(self, machine_id: str) -> str | None:
        """The nonce to act on the machine with (None: not leased by this deploy)."""
        lease = self.held.get(machine_id)
        if lease is None:
            return None
        if not lease.lost and time.monotonic() >= lease.expires:
            lease.lost = "it ran out before a refresh got through"
        if lease.lost:
            raise DeployFailed(
                f"lost the lease on {machine_id} ({lease.lost}); it was not touched", machine_id
            )
        return lease.nonce

    def forget(self, machine_id: str) -> None:
        self.held.pop(machine_id, None)

    async def refresh_forever(self, every: float) -> None:
        """Refresh every lease side by side each `every` seconds; after a round in which
        one failed, try again within a second, while the lease lasts."""
        pause = every
        while True:
            await asyncio.sleep(pause)
            refreshed = await asyncio.gather(
                *(self._refresh(m, lease) for m, lease in list(self.held.items()) if not lease.lost)
            )
            pause = every if all(refreshed) else min(every, 1.0)

    async def _refresh(self, machine_id: str, lease: _Lease) -> bool:
        """False when the refresh failed and is worth trying again."""
        assert self.fly is not None
        asked = time.monotonic()
        try:
            await self.fly.refresh_lease(
                self.app, machine_id, lease.nonce, ttl=self.ttl, budget=self.budget
            )
        except (LeaseHeldError, NotFoundError) as exc:
            lease.lost = f"it was taken or cleared: {exc.message}"
            log.warning("deploy %s: lost the lease on %s: %s", self.app, machine_id, exc)
            return True
        except FlyAPIError as exc:
            log.warning("lease refresh of %s failed: %s", machine_id, exc)
            if time.monotonic() >= lease.expires:
                lease.lost = "it ran out before a refresh got through"
                return True
            return False
        lease.expires = asked + self.ttl
        return True

    async def release_all(self) -> None:
        assert self.fly is not None
        fly = self.fly

        async def release(machine_id: str, nonce: str) -> None:
            with contextlib.suppress(FlyAPIError):
                await fly.release_lease(self.app, machine_id, nonce)

        held, self.held = self.held, {}
        await asyncio.gather(*(release(m, lease.nonce) for m, lease in held.items()))


@dataclass
class _Updated:
    machine_id: str
    old_config: dict[str, Any]
    old_image: str
    region: str
    was_stopped: bool = False


@dataclass
class _Run:
    release: Release
    plan: DeployPlan
    reporter: _SafeReporter
    leases: _Leases = field(default_factory=lambda: _Leases(None, "", 0, ""))
    launches: dict[str, str] = field(default_factory=dict)  # launch id -> machine id made
    updated: list[_Updated] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    done: int = 0
    total: int = 0
    fly_release_version: int | None = None  # Fly's number for this release, once recorded
    after_failure: str = ""  # what went wrong while undoing a failure, for the release row
    # Set when this process's heartbeat finds the row no longer ours (another process
    # judged the deploy dead): from then on nothing more is changed, and nothing written.
    claim_lost: bool = False
    settling: bool = False  # rolling back: a shutdown does not stop these steps


@dataclass(frozen=True)
class _CheckPace:
    """A machine's declared checks: how many, and when looking at them is worth a call."""

    count: int
    grace: float  # seconds after `started` before Fly reports a first result
    interval: float  # seconds between Fly's runs of the checks

    @classmethod
    def of(cls, config: Mapping[str, Any], timing: EngineTiming) -> _CheckPace:
        declared = [c for c in (config.get("checks") or {}).values() if isinstance(c, dict)]
        for service in config.get("services") or []:
            declared += [c for c in service.get("checks") or [] if isinstance(c, dict)]
        graces = [_duration(c.get("grace_period")) for c in declared]
        intervals = [_duration(c.get("interval")) for c in declared]
        known_intervals = [i for i in intervals if i]
        return cls(
            count=len(declared),
            grace=max((g for g in graces if g is not None), default=0.0) * timing.check_pace,
            interval=(
                min(known_intervals) * timing.check_pace if known_intervals else timing.check_poll
            ),
        )


def _duration(value: object) -> float | None:
    try:
        return parse_go_duration(value).total_seconds() if value else None
    except (ValueError, TypeError):
        return None


def _newest_event(machine: Machine) -> int:
    """The newest event Fly reported with the change (update, launch), by Fly's clock."""
    return max((e.timestamp or 0 for e in machine.events), default=0)


def _crashes(events: Sequence[MachineEvent], since: int) -> list[MachineEvent]:
    """Exits nobody asked for, after `since` on Fly's clock: non-zero, or killed for memory."""
    found = []
    for event in events:
        if event.type != "exit" or (event.timestamp or 0) <= since:
            continue
        request = event.request if isinstance(event.request, dict) else {}
        exit_event = request.get("exit_event")
        exit_event = exit_event if isinstance(exit_event, dict) else {}
        if exit_event.get("requested_stop"):
            continue
        code = exit_event.get("exit_code")
        if exit_event.get("oom_killed") or (isinstance(code, int) and code != 0):
            found.append(event)
    return found


def _crash_looping(machine_id: str, crashes: Sequence[MachineEvent]) -> DeployFailed:
    request = crashes[0].request if isinstance(crashes[0].request, dict) else {}
    exit_event = request.get("exit_event") if isinstance(request.get("exit_event"), dict) else {}
    assert isinstance(exit_event, dict)
    why = (
        "out of memory"
        if exit_event.get("oom_killed")
        else (f"exit code {exit_event.get('exit_code', '?')}")
    )
    return DeployFailed(
        f"machine {machine_id} is crash-looping: exited {len(crashes)} times ({why}).",
        machine_id,
    )


_HTTP_OUTPUT = re.compile(r"HTTP \w+ https?://[^/\s]+(/\S*): (\d{3})")


def _short(failing: Sequence[CheckStatus]) -> str:
    """ "HTTP 500 on /healthz" for an HTTP check's output, else its first words."""
    parts = []
    for check in failing[:2]:
        output = (check.output or "").strip()
        match = _HTTP_OUTPUT.search(output)
        parts.append(f"HTTP {match.group(2)} on {match.group(1)}" if match else output[:80])
    return "; ".join(p for p in parts if p) or "no output yet"


def _check_detail(
    failing: Sequence[CheckStatus], registered: bool, expected: int, state: str | None
) -> str:
    if not registered:
        return f"{expected} check(s) declared, Fly reports {len(failing)} so far (state {state})"
    return (
        "; ".join(f"{c.name}: {c.status}: {(c.output or '').strip()[:300]}" for c in failing)
        or f"state {state}"
    )


class Deployer:
    def __init__(
        self,
        db: Engine,
        fly: FlyClient,
        timing: EngineTiming | None = None,
        instance: str | None = None,
        host: str | None = None,
    ) -> None:
        self.db = db
        self.fly = fly
        self.timing = timing or EngineTiming()
        self.instance = instance or INSTANCE_ID  # this process's own id, never shared
        self.host = host or HOST
        self.stopping: str | None = None  # set by `interrupt`: roll-outs end at a safe point

    # --- the job row -------------------------------------------------------------------

    def claim(
        self,
        plan: DeployPlan,
        *,
        requested_by: int | None,
        requester_name: str,
        kind: str = "deploy",
        approvers: str = "",
        platform: str = "",
        workspace_id: str = "",
        channel_id: str = "",
    ) -> Release:
        """Insert the queued release; DeployBusy when the app already has an active one."""
        for _ in range(3):
            try:
                with session_scope(self.db) as session:
                    latest = session.exec(
                        select(func.max(Release.version)).where(Release.app == plan.app)
                    ).one()
                    release = Release(
                        project=plan.project,
                        stage=plan.stage,
                        app=plan.app,
                        version=(latest or 0) + 1,
                        kind=kind,
                        image=plan.image_name,  # the tag; with image_digest, the exact bits
                        image_digest=plan.image_digest,
                        previous_image=without_digest(plan.previous_image),
                        config_hash=plan.config_hash,
                        config_json=json.dumps({g.group: g.config for g in plan.groups}),
                        strategy=plan.strategy,
                        secrets_version=plan.min_secrets_version,
                        requested_by=requested_by,
                        requester_name=requester_name,
                        approvers=approvers,
                        platform=platform,
                        workspace_id=workspace_id,
                        channel_id=channel_id,
                        instance_id=self.instance,
                        host=self.host,
                        heartbeat_at=utcnow(),
                    )
                    session.add(release)
                    session.flush()
                    return release
            except IntegrityError:
                holder = self.active(plan.app)
                if holder is not None:
                    raise DeployBusy(holder) from None
        raise RuntimeError(f"could not record a release for {plan.app}")

    def active(self, app: str) -> Release | None:
        with session_scope(self.db) as session:
            return session.exec(
                select(Release).where(
                    Release.app == app, col(Release.state).in_(ACTIVE_DEPLOY_STATES)
                )
            ).first()

    def get(self, release_id: int) -> Release:
        with session_scope(self.db) as session:
            release = session.get(Release, release_id)
            assert release is not None
            return release

    def _set(
        self,
        release_id: int,
        expect: Sequence[str] | None = None,
        *,
        mine: bool = False,
        **values: Any,
    ) -> bool:
        """A compare-and-set: only from the states in `expect`, and with `mine`, only while
        the row is this process's running deploy. True when the row was changed."""
        with session_scope(self.db) as session:
            statement = update(Release).where(col(Release.id) == release_id)
            if expect is not None:
                statement = statement.where(col(Release.state).in_(expect))
            if mine:
                statement = statement.where(
                    col(Release.state) == "running", col(Release.instance_id) == self.instance
                )
            result = session.execute(statement.values(**values))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _aset(
        self,
        release_id: int,
        expect: Sequence[str] | None = None,
        *,
        mine: bool = False,
        **values: Any,
    ) -> bool:
        """`_set` off the event loop: a busy database must not stall lease refreshes."""
        return await asyncio.to_thread(
            functools.partial(self._set, release_id, expect, mine=mine, **values)
        )

    def attach_thread(self, release_id: int, thread_id: str, message_id: str) -> None:
        self._set(release_id, thread_id=thread_id, message_id=message_id)

    def abandon(self, release_id: int, reason: str) -> bool:
        """The claim could not be followed by the job's start (its thread could not be
        opened…): the queued release is failed at once, so it blocks no later deploy."""
        return self._set(
            release_id,
            expect=("queued",),
            state="failed",
            error=reason[:2000],
            finished_at=utcnow(),
        )

    # --- running -----------------------------------------------------------------------

    async def run(self, release_id: int, plan: DeployPlan, reporter: DeployReporter) -> Release:
        now = utcnow()
        if not await self._aset(
            release_id,
            expect=("queued",),
            state="running",
            started_at=now,
            heartbeat_at=now,
            instance_id=self.instance,
            host=self.host,
        ):
            # another process took it, or the sweep failed it as never started
            return await asyncio.to_thread(self.get, release_id)
        safe = _SafeReporter(reporter)
        run = _Run(await asyncio.to_thread(self.get, release_id), plan, safe)
        run.leases = _Leases(self.fly, plan.app, self.timing.lease_ttl, "")
        run.leases.description = self._lease_description(run)
        run.total = plan.machine_count
        heartbeat = asyncio.create_task(self._heartbeat(run))
        refresher: asyncio.Task[None] | None = None
        # Nothing is "succeeded" until the last step said so: whatever ends the roll-out
        # early, foreseen or not, ends it failed.
        outcome, error = "failed", ""
        started = time.monotonic()
        try:
            if plan.kind != "scale":  # flyctl's scale records no release either
                await self._create_fly_release(run)
            await self._lease_all(run)
            refresher = asyncio.create_task(self._refresh_leases(run))
            if plan.release_command and plan.kind != "scale":
                await self._release_command(run)
            strategy = (
                self._scale
                if plan.kind == "scale"
                else {
                    "rolling": self._rolling,
                    "immediate": self._immediate,
                    "canary": self._canary,
                    "bluegreen": self._bluegreen,
                }[plan.strategy]
            )
            await strategy(run)
            await self._destroy_removed(run)
            await self._reap_duplicates(run)
            outcome = "succeeded"
        except asyncio.CancelledError:
            outcome, error = "interrupted", "the deploy was cancelled"
            await self._say_interrupted(run, "it was stopped in the middle of a step")
            raise
        except DeployInterrupted as exc:
            outcome, error = "interrupted", str(exc)
            await self._say_interrupted(run, "it stopped between two steps")
        except Exception as exc:
            error = self._describe(exc)
            await safe.step(f"✗ {error}", "error")
            await self._show_failure_logs(run, exc)
            outcome = await self._after_failure(run)
            if run.after_failure:
                error = f"{error}; {run.after_failure}"
        finally:
            if refresher is not None:
                refresher.cancel()
            heartbeat.cancel()
            await self._finish(run, outcome, error, time.monotonic() - started)
        return await asyncio.to_thread(self.get, release_id)

    async def _show_failure_logs(self, run: _Run, exc: Exception) -> None:
        """The failing machine's last log lines and how it exited, in the thread, before
        anything is undone. Reporting never fails a deploy: a failure here is logged, and
        the deploy goes on to its rollback as if nothing had been asked."""
        machine_id = exc.machine_id if isinstance(exc, DeployFailed) else None
        if not machine_id or run.claim_lost:
            return
        try:
            report = await asyncio.wait_for(
                failure_report(self.fly, run.plan.app, machine_id, lines=FAILURE_LINES),
                timeout=self.timing.logs_timeout,
            )
            await run.reporter.logs(report.headline(), report.lines)
        except Exception:
            log.warning(
                "deploy %s: showing %s's logs failed", run.plan.app, machine_id, exc_info=True
            )

    async def _say_interrupted(self, run: _Run, how: str) -> None:
        reason = self.stopping or "the deploy was cancelled"
        await run.reporter.step(
            f"⏸ {reason}: {how}. {run.done}/{run.total} machines are on the new image; the "
            "leases are released. Check `/fly status` and deploy again.",
            "warning",
        )

    @staticmethod
    def _describe(exc: Exception) -> str:
        if isinstance(exc, DeployFailed | FlyAPIError):
            return str(exc)
        log.error("deploy stopped by an unexpected error", exc_info=exc)
        return f"unexpected error ({type(exc).__name__}): {exc}"

    async def _after_failure(self, run: _Run) -> str:
        """Roll back (or leave, as the stage's policy says) what the roll-out changed."""
        run.settling = True  # a shutdown now lets the rollback finish its steps
        if run.claim_lost:
            return "interrupted"  # the process that took the deploy over decides
        try:
            await self._reap_duplicates(run)
        except Exception:
            log.warning(
                "deploy %s: removing duplicate machines failed", run.plan.app, exc_info=True
            )
        if run.plan.strategy == "bluegreen" or not run.updated:
            return "failed"
        try:
            if run.plan.rollback_on_failure:
                return await self._rollback(run)
            await self._report_left(run)
        except Exception as exc:
            log.error("rollback stopped by an unexpected error", exc_info=exc)
            await run.reporter.step(f"✗ the rollback stopped: {self._describe(exc)}", "error")
        return "failed"

    async def _finish(self, run: _Run, outcome: str, error: str, elapsed: float) -> None:
        """Leases freed, the outcome written, Fly and the thread told: each step on its own,
        so one failing cannot skip the others."""
        try:
            await self._release_leases(run)
        except Exception:
            log.exception("deploy %s: releasing leases failed", run.plan.app)
        written = False
        try:
            written = await self._aset(
                run.release.id or 0,
                mine=True,
                state=outcome,
                error=error[:2000],
                finished_at=utcnow(),
                leases_json="{}",
            )
        except Exception:
            log.exception("deploy %s: recording the outcome failed", run.plan.app)
        if not written:
            current = await asyncio.to_thread(self.get, run.release.id or 0)
            log.error(
                "deploy %s v%s ended %s here, but the release is %s (set by another process): "
                "left as it is",
                run.plan.app,
                run.release.version,
                outcome,
                current.state,
            )
            await run.reporter.step(
                f"v{run.release.version}: another flybot process judged this deploy dead and "
                f"marked it {current.state}; this process stopped without changing more.",
                "error",
            )
            await run.reporter.flush(final=True)
            return
        metrics.DEPLOYS.labels(run.plan.strategy, outcome).inc()
        metrics.DEPLOY_SECONDS.labels(run.plan.strategy).observe(elapsed)
        try:
            await self._finish_fly_release(run, outcome)
        except Exception:
            log.exception("deploy %s: telling Fly the outcome failed", run.plan.app)
        await run.reporter.step(
            self._final_line(run, outcome, elapsed),
            "success" if outcome == "succeeded" else "error",
        )
        await run.reporter.flush(final=True)

    def _final_line(self, run: _Run, outcome: str, elapsed: float) -> str:
        if outcome == "succeeded" and run.plan.kind == "scale":
            return (
                f"✓ scale v{run.release.version} succeeded in {format_elapsed(elapsed)}: "
                f"{run.done}/{run.total} machine changes"
            )
        if outcome == "succeeded":
            return (
                f"✓ v{run.release.version} succeeded in {format_elapsed(elapsed)}: "
                f"{run.done}/{run.total} machines on {run.plan.image_name}"
            )
        return f"v{run.release.version} {outcome.replace('_', ' ')} after {format_elapsed(elapsed)}"

    async def _heartbeat(self, run: _Run) -> None:
        """This process is alive and still owns the deploy. When the write finds the row
        no longer ours, the roll-out stops at its next step."""
        while True:
            await asyncio.sleep(self.timing.heartbeat)
            try:
                ours = await self._aset(run.release.id or 0, mine=True, heartbeat_at=utcnow())
            except Exception:
                log.warning("deploy %s: heartbeat write failed", run.plan.app, exc_info=True)
                continue
            if not ours:
                run.claim_lost = True
                log.error(
                    "deploy %s v%s was taken over by another process: stopping",
                    run.plan.app,
                    run.release.version,
                )
                return

    def interrupt(self, reason: str) -> None:
        """Every roll-out in this process stops at its next safe point (shutdown)."""
        self.stopping = reason

    def _check_claim(self, run: _Run) -> None:
        if self.stopping and not run.settling:
            raise DeployInterrupted(self.stopping)
        if run.claim_lost:
            raise DeployFailed(
                "another flybot process judged this deploy dead (its heartbeat was late) and "
                "took it over; this process changes nothing more"
            )

    async def _create_fly_release(self, run: _Run) -> None:
        try:
            fly_release = await self.fly.create_release(
                run.plan.app,
                image=run.plan.image,
                strategy=run.plan.strategy,
                definition={"groups": [g.group for g in run.plan.groups]},
            )
        except FlyAPIError as exc:
            await run.reporter.step(
                f"! Fly did not record the release ({exc.status}); going on.", "warning"
            )
            return
        run.release.fly_release_id = fly_release.id or ""
        run.fly_release_version = fly_release.version
        await self._aset(run.release.id or 0, mine=True, fly_release_id=run.release.fly_release_id)
        try:
            await self.fly.update_release(run.release.fly_release_id, "running")
        except FlyAPIError as exc:
            log.warning("deploy %s: Fly's release stays pending: %s", run.plan.app, exc)

    async def _finish_fly_release(self, run: _Run, outcome: str) -> None:
        if not run.release.fly_release_id:
            return
        status = {"succeeded": "complete", "interrupted": "interrupted"}.get(outcome, "failed")
        with contextlib.suppress(FlyAPIError):
            await self.fly.update_release(run.release.fly_release_id, status)

    # --- leases ------------------------------------------------------------------------

    def _lease_description(self, run: _Run) -> str:
        """Unique to this deploy: read back after a lost answer, it tells our lease apart."""
        return (
            f"flybot: deploying {run.plan.app} v{run.release.version} "
            f"(release {run.release.id}, {self.instance})"
        )

    async def _lease_all(self, run: _Run) -> None:
        machines = [m for g in run.plan.groups for m in (*g.update, *g.remove)]
        machines += list(run.plan.destroy)
        try:
            await settle(run.leases.take(m.id) for m in machines)
        finally:
            # Recorded even on failure, so whatever was taken is released (or recovered).
            await self._aset(run.release.id or 0, mine=True, leases_json=run.leases.as_json())

    async def _refresh_leases(self, run: _Run) -> None:
        await run.leases.refresh_forever(self.timing.lease_refresh)

    async def _release_leases(self, run: _Run) -> None:
        await run.leases.release_all()

    # --- machine steps -----------------------------------------------------------------

    def _config_for(self, run: _Run, group: GroupPlan, machine: Machine | None) -> dict[str, Any]:
        if run.plan.kind == "scale":
            # A scale changes no release: a resized machine keeps its own config, a new one
            # the config its group's planner chose (a clone, or fly.toml's with the release
            # metadata of the app's machines).
            if group.guest is not None and machine is not None and machine.config:
                config = machine.config.to_json()
                config["guest"] = {**(config.get("guest") or {}), **group.guest}
                return config
            return copy.deepcopy(group.config)
        own = group.machine_configs.get(machine.id) if machine is not None else None
        config = copy.deepcopy(own if own is not None else group.config)
        metadata = dict(machine.metadata) if machine is not None else {}
        metadata.update(config.get("metadata") or {})
        # Fly's own release, as flyctl writes it; flybot's counter only when Fly kept none.
        metadata["fly_release_id"] = run.release.fly_release_id or f"flybot-{run.release.id}"
        metadata["fly_release_version"] = str(run.fly_release_version or run.release.version)
        config["metadata"] = metadata
        return config

    async def _update(self, run: _Run, group: GroupPlan, machine: Machine) -> Machine:
        self._check_claim(run)
        old = machine.config.to_json() if machine.config else {}
        updated = await self.fly.update_machine(
            run.plan.app,
            machine.id,
            self._config_for(run, group, machine),
            current_version=machine.current_version,
            lease_nonce=run.leases.nonce(machine.id),
            skip_launch=True if machine.state == "stopped" else None,
            min_secrets_version=run.plan.min_secrets_version,
        )
        run.updated.append(
            _Updated(
                machine.id,
                old,
                old.get("image", ""),
                machine.region or "",
                was_stopped=machine.state == "stopped",
            )
        )
        return updated

    async def _create(
        self,
        run: _Run,
        group: GroupPlan,
        region: str,
        clone_of: Machine | None = None,
        *,
        hidden: bool = False,
    ) -> Machine:
        self._check_claim(run)
        launch_id = uuid.uuid4().hex
        machine = await self.fly.create_machine(
            run.plan.app,
            self._config_for(run, group, clone_of),
            region=region,
            skip_service_registration=True if hidden else None,
            launch_id=launch_id,
            min_secrets_version=run.plan.min_secrets_version,
        )
        run.created.append(machine.id)
        run.launches[launch_id] = machine.id
        return machine

    async def _reap_duplicates(self, run: _Run) -> None:
        """A create the client had to send again (its first answer lost, and Fly's listing
        slower than the client would wait) may have made two machines: keep the one the
        deploy used, destroy the other."""
        uncertain = set(run.launches) & self.fly.uncertain_launches
        if not uncertain:
            return
        for machine in await self.fly.list_machines(run.plan.app):
            launch = machine.metadata.get(LAUNCH_ID_KEY, "")
            if launch in uncertain and machine.id != run.launches[launch]:
                if machine.state in ("destroying", "destroyed"):
                    continue
                await self.fly.delete_machine(run.plan.app, machine.id, force=True)
                await run.reporter.step(
                    f"{machine.id} destroyed: a second copy of {run.launches[launch]}, made "
                    "when Fly's answer to a create was lost",
                    "warning",
                )
        self.fly.uncertain_launches -= uncertain

    async def _wait_healthy(
        self,
        run: _Run,
        machine: Machine,
        label: str = "",
        *,
        fail_fast: bool | None = None,
    ) -> None:
        """Wait for `started` at the new version, then for every check the machine's config
        declares to pass (Fly may list checks late: an empty list is not "all passing").

        Looks at the machine in step with its checks: first when their grace period ends,
        then, while they fail, after two intervals, four, … up to `check_backoff_max` (Fly
        runs a check once per interval, so looking more often sees nothing new). Crash
        loops are counted from Fly's own events, newer by Fly's clock than the change that
        started them, and only exits nobody asked for. While checks fail the thread is told
        how long and why; with the stage's `fail_fast`, every check critical for three
        intervals fails it."""
        app = run.plan.app
        timeout = run.plan.wait_timeout.total_seconds()
        deadline = time.monotonic() + timeout
        since = _newest_event(machine)
        label = label or machine.id
        try:
            await self.fly.wait_for_state(
                app,
                machine.id,
                "started",
                version=machine.version,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except FlyAPIError as exc:
            current = await self.fly.get_machine(app, machine.id)
            crashes = _crashes(current.events, since)
            if len(crashes) >= self.timing.crash_exits:
                raise _crash_looping(machine.id, crashes) from None
            raise DeployFailed(
                f"machine {machine.id} did not start ({current.state}): {exc.message}", machine.id
            ) from None
        checks = _CheckPace.of(machine.config.to_json() if machine.config else {}, self.timing)
        if checks.count == 0:
            return  # judged by state alone, as flyctl does for a machine without checks
        fail_fast = run.plan.fail_fast if fail_fast is None else fail_fast
        started = time.monotonic()
        await asyncio.sleep(max(0.0, min(checks.grace, deadline - started)))
        unhealthy_since: float | None = None
        critical_since: float | None = None
        looks = 0
        while True:
            looks += 1
            current = await self.fly.get_machine(app, machine.id)
            crashes = _crashes(current.events, since)
            if len(crashes) >= self.timing.crash_exits:
                raise _crash_looping(machine.id, crashes)
            if current.state in ("stopped", "failed", "destroyed"):
                raise DeployFailed(
                    f"machine {machine.id} went {current.state} after starting.", machine.id
                )
            registered = len(current.checks) >= checks.count
            failing = [c for c in current.checks if c.status != "passing"]
            if current.state == "started" and registered and not failing:
                return
            now = time.monotonic()
            unhealthy_since = unhealthy_since or now
            all_critical = registered and all(c.status == "critical" for c in current.checks)
            critical_since = (critical_since or now) if all_critical else None
            detail = _check_detail(failing, registered, checks.count, current.state)
            if critical_since is not None and (
                fail_fast and now - critical_since >= 3 * checks.interval
            ):
                raise DeployFailed(
                    f"machine {machine.id}: every check critical for three intervals "
                    f"(fail_fast) — {detail}",
                    machine.id,
                )
            if now >= deadline:
                raise DeployFailed(
                    f"machine {machine.id} not healthy within {int(timeout)}s — {detail}",
                    machine.id,
                )
            worst = "critical" if critical_since is not None else "not passing"
            await run.reporter.status(
                f"{label}: checks {worst} for {format_elapsed(now - unhealthy_since)}: "
                f"{_short(failing)}"
                if failing
                else f"{label}: waiting for {checks.count - len(current.checks)} check(s) "
                "to be registered"
            )
            pause = min(
                checks.interval * 2**looks,
                max(checks.interval, self.timing.check_backoff_max),
            )
            if fail_fast and critical_since is not None:
                # the look that can end it comes when the third interval ends, not later
                pause = min(pause, critical_since + 3 * checks.interval - now)
            await asyncio.sleep(max(0.0, min(pause, deadline - now)))

    async def _machine_done(self, run: _Run, text: str) -> None:
        run.done += 1
        await run.reporter.step(text)
        await run.reporter.progress(run.done, run.total)

    @staticmethod
    def _label(group: GroupPlan, machine: Machine) -> str:
        """ "web 2/4": the machine's place in its group, as the thread names it."""
        place = next((i for i, m in enumerate(group.update, 1) if m.id == machine.id), 0)
        total = len(group.update) + len(group.create_regions)
        return f"{group.group} {place}/{total} ({machine.id})" if place else machine.id

    async def _update_and_wait(self, run: _Run, group: GroupPlan, machine: Machine) -> None:
        updated = await self._update(run, group, machine)
        if machine.state == "stopped":
            await self._machine_done(run, f"{machine.id} ({machine.region}) updated, stays stopped")
            return
        await self._wait_healthy(run, updated, self._label(group, machine))
        await self._machine_done(
            run, f"✓ {machine.id} ({machine.region}) healthy on {run.plan.image_name}"
        )

    async def _create_new(self, run: _Run, group: GroupPlan, *, wait: bool = True) -> None:
        for region in group.create_regions:
            machine = await self._create(run, group, region)
            if wait:
                await self._wait_healthy(run, machine, f"{group.group} new ({machine.id})")
            await self._machine_done(run, f"✓ {machine.id} ({region}) created for [{group.group}]")

    # --- scale -------------------------------------------------------------------------

    async def _scale(self, run: _Run) -> None:
        """`scale count` and `scale vm`: per group, new machines first (each waited for, so
        capacity comes before removal), then the removals, then resizes one machine at a
        time, each waited for as a rolling deploy's would be."""
        for group in run.plan.groups:
            for index, region in enumerate(group.create_regions):
                config_group = group
                volume = group.create_volumes[index] if index < len(group.create_volumes) else ""
                if volume:
                    config = copy.deepcopy(group.config)
                    config["mounts"][0]["volume"] = volume
                    config_group = replace(group, config=config)
                machine = await self._create(run, config_group, region)
                await self._wait_healthy(run, machine, f"{group.group} new ({machine.id})")
                await self._machine_done(
                    run,
                    f"✓ {machine.id} ({region}) created for [{group.group}]"
                    + (f", mounting {volume}" if volume else ""),
                )
            for machine in group.remove:
                await self._destroy(run, machine.id, run.leases.nonce(machine.id))
                await self._machine_done(
                    run, f"{machine.id} ({machine.region}, {machine.state}) destroyed"
                )
            ordered = [m for m in group.update if m.state == "stopped"]
            ordered += [m for m in group.update if m.state != "stopped"]
            for machine in ordered:
                updated = await self._update(run, group, machine)
                if machine.state == "stopped":
                    await self._machine_done(
                        run, f"{machine.id} ({machine.region}) resized, stays stopped"
                    )
                    continue
                await self._wait_healthy(run, updated, self._label(group, machine))
                await self._machine_done(
                    run, f"✓ {machine.id} ({machine.region}) resized and healthy"
                )
            await run.reporter.flush()

    # --- strategies --------------------------------------------------------------------

    def _batches(self, run: _Run, machines: Sequence[Machine]) -> list[list[Machine]]:
        if not machines:
            return []
        size_setting = run.plan.max_unavailable
        size = int(size_setting) if size_setting >= 1 else math.floor(size_setting * len(machines))
        size = max(1, size)
        first, rest = [machines[0]], list(machines[1:])
        return [first] + [rest[i : i + size] for i in range(0, len(rest), size)]

    async def _rolling_group(self, run: _Run, group: GroupPlan) -> None:
        stopped = [m for m in group.update if m.state == "stopped"]
        running = [m for m in group.update if m.state != "stopped"]
        for machine in stopped:
            await self._update_and_wait(run, group, machine)
        batches = self._batches(run, running)
        for number, batch in enumerate(batches, start=1):
            await run.reporter.step(
                f"[{group.group}] batch {number}/{len(batches)}: {', '.join(m.id for m in batch)}"
            )
            await settle(self._update_and_wait(run, group, m) for m in batch)
            await run.reporter.flush()
        await self._create_new(run, group)

    async def _rolling(self, run: _Run) -> None:
        for group in run.plan.groups:
            await self._rolling_group(run, group)

    async def _immediate(self, run: _Run) -> None:
        async def one(group: GroupPlan, machine: Machine) -> None:
            await self._update(run, group, machine)
            await self._machine_done(run, f"{machine.id} ({machine.region}) updated")

        await settle(one(g, m) for g in run.plan.groups for m in g.update)
        for group in run.plan.groups:
            await self._create_new(run, group, wait=False)

    async def _canary(self, run: _Run) -> None:
        for group in run.plan.groups:
            if group.update:
                first = group.update[0]
                canary = await self._create(
                    run, group, first.region or run.plan.primary_region, clone_of=first
                )
                await run.reporter.step(f"[{group.group}] canary {canary.id} created")
                try:
                    await self._wait_healthy(run, canary, f"{group.group} canary ({canary.id})")
                finally:
                    await self._destroy(run, canary.id, nonce=None)
                    run.created.remove(canary.id)
                await run.reporter.step(f"✓ [{group.group}] canary healthy; rolling the rest")
            await self._rolling_group(run, group)

    async def _bluegreen(self, run: _Run) -> None:
        greens: list[tuple[GroupPlan, Machine, Machine]] = []
        try:
            for group in run.plan.groups:
                for blue in group.update:
                    green = await self._create(
                        run,
                        group,
                        blue.region or run.plan.primary_region,
                        clone_of=blue,
                        hidden=True,
                    )
                    greens.append((group, blue, green))
            await run.reporter.step(
                f"{len(greens)} green machine(s) created; waiting for all "
                "to be healthy before they take traffic"
            )
            await settle(
                self._wait_healthy(run, green, f"{group.group} green ({green.id})")
                for group, _, green in greens
            )
        except (DeployFailed, FlyAPIError):
            await run.reporter.step(
                "Removing the green machines; the blue ones keep serving.", "warning"
            )
            for _, _, green in greens:
                with contextlib.suppress(FlyAPIError):
                    await self._destroy(run, green.id, nonce=None)
            run.created.clear()
            raise
        await settle(self.fly.uncordon_machine(run.plan.app, green.id) for _, _, green in greens)
        await run.reporter.step(
            "✓ greens are healthy and take traffic; retiring the blues: cordon, drain, stop, "
            "destroy"
        )
        await self._retire_blues(run, greens)
        for group in run.plan.groups:
            await self._create_new(run, group)

    async def _retire_blues(
        self, run: _Run, greens: Sequence[tuple[GroupPlan, Machine, Machine]]
    ) -> None:
        """As flyctl: give the proxy time to see the greens, cordon the blues so it sends them
        nothing new, let what is in flight drain, stop them, wait for `stopped`, destroy.
        A blue that will not go is reported with the command to remove it; the greens
        already serve, so it does not fail the deploy."""
        app = run.plan.app
        await asyncio.sleep(self.timing.proxy_settle)

        async def cordon(blue: Machine) -> None:
            try:
                await self.fly.cordon_machine(app, blue.id, lease_nonce=run.leases.nonce(blue.id))
            except (FlyAPIError, DeployFailed) as exc:
                log.warning("deploy %s: cordoning blue %s failed: %s", app, blue.id, exc)

        await asyncio.gather(*(cordon(blue) for _, blue, _ in greens))
        await asyncio.sleep(self.timing.drain)
        problems = await asyncio.gather(*(self._retire(run, blue) for _, blue, _ in greens))
        for (_, blue, green), problem in zip(greens, problems, strict=True):
            if problem:
                await run.reporter.step(
                    f"⚠ blue {blue.id} could not be removed ({problem}); {green.id} serves in "
                    f"its place. Remove it with `fly machine destroy --force {blue.id} -a {app}`.",
                    "warning",
                )
            await self._machine_done(run, f"✓ {green.id} ({green.region}) replaced {blue.id}")

    async def _retire(self, run: _Run, blue: Machine) -> str:
        """Stop, wait, destroy one blue: '' when it is gone, else why not."""
        app = run.plan.app
        try:
            nonce = run.leases.nonce(blue.id)
        except DeployFailed as exc:
            return str(exc)
        try:
            if blue.state != "stopped":
                await self.fly.stop_machine(app, blue.id, lease_nonce=nonce)
                await self.fly.wait_for_state(
                    app, blue.id, "stopped", timeout=run.plan.wait_timeout.total_seconds()
                )
            await self.fly.delete_machine(app, blue.id, lease_nonce=nonce)
        except FlyAPIError as exc:
            try:  # it will not stop (or not in time): take it down the hard way
                await self.fly.delete_machine(app, blue.id, force=True, lease_nonce=nonce)
            except FlyAPIError as again:
                return f"{exc.message}; then {again.message}"
        run.leases.forget(blue.id)
        return ""

    async def _destroy(self, run: _Run, machine_id: str, nonce: str | None) -> None:
        self._check_claim(run)
        await self.fly.delete_machine(run.plan.app, machine_id, force=True, lease_nonce=nonce)
        run.leases.forget(machine_id)

    async def _destroy_removed(self, run: _Run) -> None:
        for machine in run.plan.destroy:
            await self._destroy(run, machine.id, run.leases.nonce(machine.id))
            await run.reporter.step(
                f"{machine.id} destroyed (process group "
                f"{machine.metadata.get(GROUP_KEY, 'app')} is gone)"
            )

    async def _release_command(self, run: _Run) -> None:
        group = run.plan.groups[0]
        config = self._config_for(run, group, None)
        assert run.plan.release_command is not None
        config["init"] = {"cmd": shlex.split(run.plan.release_command)}
        config["restart"] = {"policy": "no"}
        config["auto_destroy"] = True
        config.pop("services", None)
        config.pop("checks", None)
        config["metadata"] = {**config["metadata"], GROUP_KEY: RELEASE_COMMAND_GROUP}
        await run.reporter.step(f"Running release command: {run.plan.release_command}")
        machine = await self.fly.create_machine(
            run.plan.app, config, region=run.plan.primary_region
        )
        timeout = run.plan.wait_timeout.total_seconds()
        try:
            await self.fly.wait_for_state(
                run.plan.app, machine.id, ["stopped", "destroyed"], timeout=timeout
            )
        except FlyAPIError as exc:
            raise DeployFailed(f"release command did not finish: {exc.message}") from None
        events = await self.fly.list_events(run.plan.app, machine.id)
        codes = [
            (e.request or {}).get("exit_event", {}).get("exit_code")
            for e in events
            if e.type == "exit"
        ]
        code = next((c for c in codes if c is not None), 0)
        if code != 0:
            raise DeployFailed(
                f"release command exited with code {code}; no machine was changed.", machine.id
            )
        await run.reporter.step("✓ release command succeeded")

    async def _report_left(self, run: _Run) -> None:
        """The stage's policy says leave them: say exactly which machine runs what."""
        await run.reporter.step(
            "Rollback is off for this stage: machines are left as they are.", "warning"
        )
        updated = {item.machine_id for item in run.updated}
        for group in run.plan.groups:
            for machine in group.update:
                image = (
                    run.plan.image_name
                    if machine.id in updated
                    else without_digest(machine.config.image or "?" if machine.config else "?")
                )
                await run.reporter.step(f"{machine.id} ({machine.region}) runs {image}")
        for machine_id in run.created:
            await run.reporter.step(f"{machine_id} (new) runs {run.plan.image_name}")

    async def _rollback(self, run: _Run) -> str:
        await run.reporter.step(
            f"Rolling back {len(run.updated)} updated machine(s) to their previous config",
            "warning",
        )
        failed = []
        for item in reversed(run.updated):
            if run.claim_lost:
                break
            old_image = without_digest(item.old_image)
            try:
                machine = await self.fly.update_machine(
                    run.plan.app,
                    item.machine_id,
                    item.old_config,
                    lease_nonce=run.leases.nonce(item.machine_id),
                    skip_launch=True if item.was_stopped else None,
                )
                if not item.was_stopped:
                    # Back on the old version is not back in service: its checks must pass
                    # too, or the thread would say "rolled back" over machines still failing.
                    await self._wait_healthy(run, machine, f"rollback of {item.machine_id}")
                await run.reporter.step(
                    f"↩ {item.machine_id} ({item.region}) back on {old_image}"
                    + (", stays stopped" if item.was_stopped else ", healthy")
                )
            except (FlyAPIError, DeployFailed) as exc:
                failed.append(item.machine_id)
                reason = exc.message if isinstance(exc, FlyAPIError) else str(exc)
                await run.reporter.step(
                    f"✗ {item.machine_id} did not come back healthy on {old_image}: {reason}",
                    "error",
                )
        if failed:
            run.after_failure = (
                f"the rollback did not bring {', '.join(failed)} back healthy on the old version"
            )
        for machine_id in run.created:
            with contextlib.suppress(FlyAPIError):
                await self._destroy(run, machine_id, nonce=None)
        return "failed" if failed else "rolled_back"

    # --- recovery ----------------------------------------------------------------------

    def _stale(self, cutoff: datetime) -> list[Release]:
        last_sign = func.coalesce(col(Release.heartbeat_at), col(Release.created_at))
        with session_scope(self.db) as session:
            return list(
                session.exec(
                    select(Release).where(
                        col(Release.state).in_(ACTIVE_DEPLOY_STATES), last_sign < cutoff
                    )
                )
            )

    def _take_over(self, release: Release, cutoff: datetime) -> bool:
        """The compare-and-set that makes one process, of any number sweeping at once, the
        one that closes a dead deploy: still active, and its heartbeat still stale."""
        last_sign = func.coalesce(col(Release.heartbeat_at), col(Release.created_at))
        never_started = release.state == "queued"
        with session_scope(self.db) as session:
            result = session.execute(
                update(Release)
                .where(
                    col(Release.id) == release.id,
                    col(Release.state) == release.state,
                    last_sign < cutoff,
                )
                .values(
                    state="failed" if never_started else "interrupted",
                    finished_at=utcnow(),
                    leases_json="{}",
                    error=(
                        "flybot stopped before this deploy began; nothing was changed"
                        if never_started
                        else "flybot stopped in the middle of this deploy"
                    ),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def recover(self, notify: Callable[[Release], Awaitable[None]]) -> list[Release]:
        """Close the deploys whose process died: a release queued or running whose heartbeat
        is older than `stale_after` is marked interrupted (failed, when it never started),
        its leases are freed, Fly is told, and its thread. Death is judged by the heartbeat
        alone, whoever ran it; each dead deploy is claimed by a compare-and-set, so any
        number of processes sweeping at once close it once."""
        cutoff = utcnow() - timedelta(seconds=self.timing.stale_after)
        recovered = []
        for release in await asyncio.to_thread(self._stale, cutoff):
            if not await asyncio.to_thread(self._take_over, release, cutoff):
                continue
            for machine_id, nonce in json.loads(release.leases_json or "{}").items():
                with contextlib.suppress(FlyAPIError):
                    await self.fly.release_lease(release.app, machine_id, nonce)
            if release.fly_release_id:
                with contextlib.suppress(FlyAPIError):
                    await self.fly.update_release(release.fly_release_id, "interrupted")
            closed = await asyncio.to_thread(self.get, release.id or 0)
            recovered.append(closed)
            try:
                await notify(closed)
            except Exception:
                log.exception(
                    "deploy %s v%s: telling its thread failed", closed.app, closed.version
                )
        return recovered

    sweep = recover
