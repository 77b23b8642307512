"""Benchmark: a rolling deploy of 12 machines against the Fly simulator with latency.

Prints the wall time of the roll-out, the ideal critical path, their ratio (target <= 1.15),
and the Fly API calls made per machine (target <= 8), by operation. The deploy runs twice:
with checks that pass as soon as the machine starts, and with an app whose checks take
`--slow-checks-s` (5 s) to pass after each start.

The ideal critical path is batches x per-machine time, where a batch is one machine alone and
then groups of max_unavailable, and per-machine time is what no deployer can avoid: the
update call, the machine's start, and one call to see it healthy (start + 2 x latency).

    python bench/deploy.py [--machines 12] [--latency-ms 50] [--start-s 1.0] [--slow-checks-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bot.deploy.engine import Deployer, EngineTiming
from bot.deploy.flytoml import load_stage_config, with_release
from bot.deploy.plan import make_plan
from bot.fly import FlyClient, FlyConfig
from bot.fly.simulator import FlySimulator, SimulatorTiming, running_simulator
from bot.projects import load_catalog
from bot.store import make_engine, upgrade

FLY_TOML = """\
app = "bench-app"
primary_region = "nrt"

[deploy]
  strategy = "rolling"
  max_unavailable = {max_unavailable}
  wait_timeout = "60s"

[http_service]
  internal_port = 8080

  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
"""


class QuietReporter:
    async def step(self, text: str, tone: str = "info") -> None:
        pass

    async def progress(self, done: int, total: int) -> None:
        pass

    async def flush(self, final: bool = False) -> None:
        pass


@dataclass
class Result:
    wall: float
    calls: Counter[str]
    machines: int

    @property
    def per_machine(self) -> float:
        return sum(self.calls.values()) / self.machines


async def deploy_once(
    machines: int, latency_ms: float, start_s: float, max_unavailable: float, ready_s: float
) -> Result:
    """One roll-out of `machines` machines; the new image's checks pass `ready_s` after start."""
    sim = FlySimulator(seed=1, timing=SimulatorTiming(start_s=start_s, check_grace_s=0.0))
    if ready_s:
        sim.set_ready_after(ready_s, image="bench:v2")
    async with running_simulator(sim, port=0) as server:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            (root / "bench").mkdir()
            (root / "bench" / "fly.toml").write_text(
                FLY_TOML.format(max_unavailable=max_unavailable)
            )
            (root / "flybot.toml").write_text(
                '[projects.bench]\npath = "bench"\n[projects.bench.stages.dev]\nguarded = []\n'
            )
            catalog = load_catalog(root / "flybot.toml")
            project = catalog.projects["bench"]
            stage = project.stages[0]
            fly = FlyClient(
                FlyConfig(
                    token="bench",
                    org="demo",
                    flaps_base_url=server.base_url,
                    api_base_url=server.base_url,
                )
            )
            await sim_app(server.base_url, "bench-app")
            config = load_stage_config(stage.config_file)
            seeded = [
                await fly.create_machine(
                    "bench-app",
                    with_release(config.machine_config("app", "bench:v1"), "s", 1),
                    region="nrt",
                )
                for _ in range(machines)
            ]
            for machine in seeded:
                await fly.wait_for_state("bench-app", machine.id, "started", timeout=30)

            db = make_engine(f"sqlite:///{root / 'bench.db'}")
            upgrade(db)
            deployer = Deployer(db, fly, EngineTiming())
            plan = await make_plan(fly, project, stage, image="bench:v2")
            release = deployer.claim(plan, requested_by=None, requester_name="bench")
            sim.inject("*", latency_ms=latency_ms)
            sim.calls.clear()
            started = time.monotonic()
            finished = await deployer.run(release.id or 0, plan, QuietReporter())
            wall = time.monotonic() - started
            sim.clear_faults()
            calls = Counter(c.operation for c in sim.calls)
            await fly.aclose()
            db.dispose()
    assert finished.state == "succeeded", finished.error
    return Result(wall, calls, machines)


async def bench(
    machines: int, latency_ms: float, start_s: float, max_unavailable: float, slow_s: float
) -> None:
    latency = latency_ms / 1000
    size = max(
        1, int(max_unavailable) if max_unavailable >= 1 else math.floor(max_unavailable * machines)
    )
    batches = 1 + math.ceil((machines - 1) / size)
    per_machine = start_s + 2 * latency
    ideal = batches * per_machine
    fast = await deploy_once(machines, latency_ms, start_s, max_unavailable, 0.0)
    slow = await deploy_once(machines, latency_ms, start_s, max_unavailable, slow_s)
    print(f"machines            {machines}")
    print(f"latency per call    {latency_ms:.0f} ms")
    print(f"start per machine   {start_s:.2f} s")
    print(f"batches             {batches} (1 alone, then {size} at a time)")
    print("fast checks (pass as soon as the machine starts)")
    print(f"  wall time           {fast.wall:.2f} s")
    print(f"  ideal critical path {ideal:.2f} s  ({batches} x {per_machine:.2f} s)")
    print(f"  ratio               {fast.wall / ideal:.3f}  (target <= 1.15)")
    print(
        f"  Fly API calls       {sum(fast.calls.values())}  "
        f"({fast.per_machine:.1f} per machine, target <= 8)"
    )
    print(f"    by operation      {dict(fast.calls.most_common())}")
    print(f"checks that take {slow_s:.0f} s to pass after each start")
    print(f"  wall time           {slow.wall:.2f} s")
    print(
        f"  Fly API calls       {sum(slow.calls.values())}  "
        f"({slow.per_machine:.1f} per machine, target <= 8)"
    )
    print(f"    by operation      {dict(slow.calls.most_common())}")


async def sim_app(base_url: str, name: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": "Bearer b"}) as http:
        response = await http.post("/v1/apps", json={"app_name": name, "org_slug": "demo"})
        response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=12)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--start-s", type=float, default=1.0)
    parser.add_argument("--max-unavailable", type=float, default=0.33)
    parser.add_argument("--slow-checks-s", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(
        bench(
            args.machines, args.latency_ms, args.start_s, args.max_unavailable, args.slow_checks_s
        )
    )


if __name__ == "__main__":
    main()
