"""The composition root: settings -> services, the router adapters register with, and the
work a process does once (recovery at start, the scheduler) whatever adapters it runs.

    runtime = Runtime.from_settings(settings)
    runtime.attach("shell", conversation)     # each adapter, before start
    await runtime.start()                      # recovery, then the scheduler: once
    ...
    await runtime.stop()                       # scheduler off, jobs finished, Fly closed

This package may import commands/ and adapters/; the rest of bot/ imports neither.
"""

from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deploy.timing import EngineTiming
from bot.runtime.recovery import recover_interrupted
from bot.runtime.scheduler import APPROVAL_SWEEP_EVERY, start_scheduler
from bot.runtime.services import build_services, fly_client
from bot.settings import Settings
from commands.context import Services
from commands.dispatch import Dispatcher
from commands.port import Outbox

__all__ = ["Runtime", "build_services", "fly_client", "recover_interrupted", "start_scheduler"]

log = logging.getLogger(__name__)

CANCEL_GRACE = 4.0  # seconds a cancelled job has to release its leases and tell its thread


class Runtime:
    """One per process."""

    def __init__(self, services: Services, sweep_every: float = APPROVAL_SWEEP_EVERY) -> None:
        self.services = services
        self.dispatcher = Dispatcher(services)
        self.sweep_every = sweep_every
        self.scheduler: AsyncIOScheduler | None = None
        self.started = False

    @classmethod
    def from_settings(cls, settings: Settings, timing: EngineTiming | None = None) -> Runtime:
        return cls(build_services(settings, timing))

    def attach(self, platform: str, outbox: Outbox) -> None:
        """An adapter's durable posts: what the router sends to `platform`."""
        self.services.router.register(platform, outbox)

    async def start(self) -> None:
        """Recover what a dead process left, then start the scheduler. Idempotent: a second
        adapter starting does not start a second scheduler."""
        if self.started:
            return
        self.started = True
        await recover_interrupted(self.services)
        self.scheduler = start_scheduler(self.services, every=self.sweep_every)

    async def stop(self, grace: float | None = None, reason: str = "") -> None:
        """Scheduler off, then the jobs: all awaited when `grace` is None; else running
        deploys are asked to stop at their next safe point (`reason` goes to their threads)
        and whatever is still running after `grace` seconds is cancelled, which marks a
        deploy interrupted, releases its leases and tells its thread."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
            await asyncio.sleep(0)  # the asyncio scheduler stops on the loop's next turn
        jobs = self.services.jobs
        if grace is None:
            await jobs.wait_all()
        else:
            if self.services.made_deployer is not None:  # else no deploy ever ran here
                self.services.made_deployer.interrupt(reason or "flybot is shutting down")
            if not await jobs.wait_all(grace):
                log.warning("shutdown: %d jobs still running after %.0f s: cancelled",
                            jobs.cancel_all(), grace)
                if not await jobs.wait_all(CANCEL_GRACE):
                    log.error("shutdown: jobs did not end %.0f s after cancel", CANCEL_GRACE)
        if self.services.made_fly is not None:
            await self.services.made_fly.aclose()
        self.services.engine.dispose()
        self.started = False

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
