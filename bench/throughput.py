"""Benchmark: `/fly status` commands per second through the dispatcher (the whole pipeline:
delivery claim, parse, identity, permission check, the Fly reads, the reply, the audit row)
against the Fly simulator answering every call after 10 ms, on SQLite and on PostgreSQL.

Beside it, in the same run, the floor: the very HTTP calls one status makes (recorded from
the simulator), replayed with a bare httpx client at the same concurrency against the same
simulator and latency. The ratio is flybot's rate over that floor's: what the command layer
costs on top of Fly's own answers.

PostgreSQL is FLYBOT_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres,
a database of its own is created and dropped); skipped with a line when it does not answer.

    python bench/throughput.py [--commands 200] [--concurrency 10] [--latency-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from tests.flyharness import World, world  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "FLYBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LINE = "status shop dev"


@contextmanager
def postgres_database() -> Iterator[str | None]:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=2) as connection:
            name = f"flybot_bench_{uuid.uuid4().hex[:12]}"
            connection.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"PostgreSQL at {PG_ADMIN_URL.rsplit('@', 1)[-1]} does not answer ({exc})")
        yield None
        return
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def rate(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """`one(n)` for n in range(count), at most `concurrency` at once: calls per second."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(n: int) -> None:
        async with gate:
            await one(n)

    began = time.perf_counter()
    await asyncio.gather(*(gated(n) for n in range(count)))
    return count / (time.perf_counter() - began)


async def status(w: World, n: int) -> None:
    outcome, conversation = await w.bot.run("alice", LINE, dedupe_key=f"bench:{uuid.uuid4()}")
    if outcome.status != "ok":
        raise SystemExit(f"status answered {outcome.status}: {conversation.all_text()}")


async def measure(
    database_url: str, count: int, concurrency: int, latency: float
) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="flybot-bench-throughput-") as scratch:
        async with world(Path(scratch), database_url=database_url) as w:
            w.sim.inject("*", latency=latency)
            await status(w, 0)  # warm-up: caches, the identity row
            w.sim.calls.clear()
            await status(w, 0)
            recorded: list[Any] = list(w.sim.calls)
            calls = [(c.method, c.path, dict(c.query), c.body) for c in recorded]
            ours = await rate(count, concurrency, lambda n: status(w, n))
            async with httpx.AsyncClient(
                base_url=w.base_url, headers={"Authorization": "Bearer test-token"}
            ) as http:

                async def replay(n: int) -> None:
                    for method, path, query, body in calls:
                        response = await http.request(method, path, params=query, json=body)
                        response.raise_for_status()

                floor = await rate(count, concurrency, replay)
    return ours, floor, len(calls)


async def bench(count: int, concurrency: int, latency_ms: float) -> None:
    load = os.getloadavg()[0]
    print(
        f"/fly status through the dispatcher: {count} commands, {concurrency} at once, "
        f"Fly latency {latency_ms:g} ms (load average {load:.2f})"
    )
    with tempfile.TemporaryDirectory() as scratch, postgres_database() as postgres:
        databases = {"SQLite": f"sqlite:///{Path(scratch) / 'flybot.db'}"}
        if postgres is not None:
            databases["PostgreSQL"] = postgres
        for name, url in databases.items():
            ours, floor, calls = await measure(url, count, concurrency, latency_ms / 1000)
            print(
                f"  {name:<10} {ours:7.1f} status/s   floor (the same {calls} Fly calls, bare "
                f"httpx) {floor:7.1f}/s   ratio {ours / floor:.2f}×"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(bench(args.commands, args.concurrency, args.latency_ms))


if __name__ == "__main__":
    main()
