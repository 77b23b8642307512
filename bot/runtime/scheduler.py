"""Periodic work in this process. Each job is safe on any number of instances: what it
changes is claimed by a compare-and-set in the database. Its notices go through the
router, to the platform each thread lives on."""

from __future__ import annotations

import asyncio

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.runtime.recovery import recover_deploys
from bot.store import dedupe
from commands.approvals import sweep
from commands.context import Services

APPROVAL_SWEEP_EVERY = 30.0  # seconds between sweeps of expired and stuck approval requests
DEDUPE_PRUNE_EVERY = 3600.0  # seconds: delivery ids older than two days are let go hourly


async def prune_deliveries(services: Services) -> None:
    """Platform delivery ids (Slack retries come within minutes) are kept two days."""
    await asyncio.to_thread(dedupe.prune, services.engine)


def start_scheduler(services: Services, every: float = APPROVAL_SWEEP_EVERY) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        sweep,
        "interval",
        seconds=every,
        args=(services,),
        id="approval-sweep",
        max_instances=1,
        coalesce=True,
    )
    if services.deployer is not None:
        scheduler.add_job(
            recover_deploys,
            "interval",
            seconds=services.deployer.timing.sweep_every,
            args=(services,),
            id="deploy-sweep",
            max_instances=1,
            coalesce=True,
        )
    scheduler.add_job(
        prune_deliveries,
        "interval",
        seconds=DEDUPE_PRUNE_EVERY,
        args=(services,),
        id="dedupe-prune",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
