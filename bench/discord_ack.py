"""Benchmark: time from an INTERACTION_CREATE sent on the gateway to the interaction's
acknowledgement (the deferral, or a modal) reaching Discord, for N concurrent `/fly
status shop dev` commands against `flybot run` as a process (Discord gives 3 s).

The fake Discord (tests/fakes/discord_api.py) and the Fly simulator run in this process;
flybot answers every command for real (Fly read, answer posted) and each round waits for all
answers, so rounds never overlap.

    python bench/discord_ack.py [--concurrent 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.discord.harness import BOB, discord_world  # noqa: E402
from tests.fakes.discord_api import FakeDiscord, Interaction  # noqa: E402


def answered(d: FakeDiscord, batch: list[Interaction]) -> bool:
    for interaction in batch:
        shown = d.messages.get(interaction.original or "")
        if shown is None or (shown.loading and not shown.deleted):
            return False
    return True


async def main(concurrent: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with discord_world(Path(folder)) as w:
            w.grant(BOB, "viewer")
            bot = await w.start()
            d = w.discord
            acks: list[float] = []
            for _ in range(rounds):
                batch: list[Interaction] = []
                sent: dict[str, float] = {}
                for _ in range(concurrent):
                    one = d.slash_of(BOB, "status", project="shop", stage="dev")
                    batch.append(one)
                    sent[one.id] = time.monotonic()
                await asyncio.gather(*(d.dispatch_interaction(i) for i in batch))
                await d.wait_for(lambda batch=batch: answered(d, batch), timeout=120)
                for interaction in batch:
                    acks.append(interaction.acked_at - sent[interaction.id])
            await bot.stop()
    acks.sort()
    p50 = statistics.median(acks) * 1000
    p99 = acks[min(len(acks) - 1, int(len(acks) * 0.99))] * 1000
    print(
        f"{len(acks)} interactions, {concurrent} at once: ack p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {acks[-1] * 1000:.1f} ms (Discord's limit: 3000 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.concurrent, options.rounds))
