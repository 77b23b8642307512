"""Periodic work in this process. Each job is safe on any number of instances: what it
changes is claimed by a compare-and-set in the database. Its notices go through the
router, to the platform each thread lives on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.instance import INSTANCE_ID
from bot.runtime.recovery import recover_deploys
from bot.store.prune import prune_if_due
from commands.approvals import sweep
from commands.certs import recheck_pending, warn_expiring
from commands.context import Services
from commands.usage import collect_and_alert, send_due_reports

log = logging.getLogger(__name__)

APPROVAL_SWEEP_EVERY = 30.0  # seconds between sweeps of expired and stuck approval requests
PRUNE_CHECK_EVERY = 300.0  # seconds between asking whether this hour's prune is claimed yet
CERTS_RECHECK_ASK_EVERY = 60.0  # seconds between asking whether the certificate re-check is due
CERTS_EXPIRY_ASK_EVERY = 3600.0  # seconds between asking whether the daily expiry scan is due
USAGE_COLLECT_EVERY = 600.0  # seconds between asking whether a usage day is due (claimed)
USAGE_REPORTS_EVERY = 60.0  # seconds between looking for due usage reports (claimed)


async def prune_old_rows(services: Services) -> None:
    """Delivery ids older than two days and spent link codes go, once an hour across all
    instances (the run is claimed in the database; see bot/store/prune.py)."""
    pruned = await asyncio.to_thread(prune_if_due, services.engine, INSTANCE_ID)
    if pruned is not None:  # this instance won the period's claim: said even when nothing went
        log.info(
            "pruned %d delivery ids and %d link codes (run claimed by %s)",
            pruned.deliveries,
            pruned.link_codes,
            INSTANCE_ID,
        )


def start_scheduler(services: Services, every: float = APPROVAL_SWEEP_EVERY) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    ask = services.settings.scheduler_ask_every
    scheduler.add_job(
        sweep,
        "interval",
        seconds=every,
        args=(services,),
        id="approval-sweep",
        max_instances=1,
        coalesce=True,
    )
    if services.has_fly:
        scheduler.add_job(
            recover_deploys,
            "interval",
            seconds=services.timing.sweep_every,
            args=(services,),
            id="deploy-sweep",
            max_instances=1,
            coalesce=True,
        )
    scheduler.add_job(
        prune_old_rows,
        "interval",
        seconds=ask or PRUNE_CHECK_EVERY,
        args=(services,),
        id="row-prune",
        max_instances=1,
        coalesce=True,
    )
    if services.has_fly:
        # Both are claimed in the database (commands/certs.py), so asking often is cheap and
        # N instances still check each period once.
        scheduler.add_job(
            recheck_pending,
            "interval",
            seconds=ask or CERTS_RECHECK_ASK_EVERY,
            args=(services,),
            id="certs-recheck",
            max_instances=1,
            coalesce=True,
        )
        scheduler.add_job(
            warn_expiring,
            "interval",
            seconds=ask or CERTS_EXPIRY_ASK_EVERY,
            args=(services,),
            id="certs-expiry",
            max_instances=1,
            coalesce=True,
        )
    if services.has_fly:
        # Each day and each report is claimed in the database (bot/usage/), so every
        # instance asking still samples a day once and posts a report once.
        scheduler.add_job(
            collect_and_alert,
            "interval",
            seconds=USAGE_COLLECT_EVERY,
            args=(services,),
            id="usage-collect",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=30),
        )
    scheduler.add_job(
        send_due_reports,
        "interval",
        seconds=USAGE_REPORTS_EVERY,
        args=(services,),
        id="usage-reports",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
