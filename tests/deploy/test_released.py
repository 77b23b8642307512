"""What a deploy builds for itself (its run, leases, updated machines, plan, reporter, the
machines it read from Fly) is let go when it ends, so a bot that has rolled out a thousand
releases holds no more than one that has rolled out one. Counted as live objects after a
full collection, never as RSS (bench/memory.py measures that)."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

from bot.deploy import engine
from bot.deploy.plan import DeployPlan
from bot.fly.models import Machine
from tests.deploy.test_engine import deploy, releases
from tests.flyharness import NEW, OLD, world

PER_DEPLOY = (engine._Run, engine._Leases, engine._Lease, engine._Updated, DeployPlan)


def live() -> Counter[str]:
    gc.collect()
    kinds = (*PER_DEPLOY, engine._SafeReporter, Machine)
    return Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds))


async def test_a_finished_deploy_leaves_none_of_its_objects_behind(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        before = live()
        for n, image in enumerate((NEW, OLD, NEW), start=1):
            outcome, conversation = await deploy(w, f"deploy shop staging {image}")
            assert outcome.status == "ok", conversation.all_text()
            assert [r.state for r in releases(w)] == ["succeeded"] * n
            assert live() == before, f"after deploy {n}"
