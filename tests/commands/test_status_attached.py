"""`/fly status` lists the org's Fly Postgres clusters (postgres-flex image or role metadata)
and the app's Upstash Redis databases (GraphQL addOns) with their state, from the simulator
over HTTP; a Fly failure there is one line and the machines are still shown."""

from __future__ import annotations

from pathlib import Path

from tests.flyharness import World, world

PG = "flyio/postgres-flex:16.4"


async def postgres_app(w: World, name: str = "shop-db") -> list[str]:
    await w.fly.create_app(name, "demo")
    ids = []
    for role in ("primary", "replica"):
        config = {"image": PG, "metadata": {"role": role, "fly-managed-postgres": "true"}}
        machine = await w.fly.create_machine(name, config, region="nrt")
        await w.fly.wait_for_state(name, machine.id, "started", timeout=10)
        ids.append(machine.id)
    return ids


async def test_postgres_and_redis_are_listed_with_their_state(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await postgres_app(w)
        await w.fly.create_app("plain-app", "demo")
        await w.fly.create_machine("plain-app", {"image": "registry.fly.io/plain:v1"})
        w.sim.add_redis("shop-staging", "shop-cache", region="nrt", read_regions=("sin",))
        outcome, conversation = await w.bot.run("alice", "status shop staging")
        text = conversation.all_text()
        assert outcome.status == "ok", text
        assert (
            "Postgres shop-db: 2 machine(s): primary started (nrt), replica started (nrt)" in text
        )
        assert "Redis shop-cache (Upstash, Pay-as-you-go): ready in nrt (replicas sin)" in text
        assert "plain-app" not in text
        # another stage's app has no Redis of its own
        _, conversation = await w.bot.run("alice", "status shop dev")
        assert "shop-cache" not in conversation.all_text()
        assert "Postgres shop-db" in conversation.all_text()


async def test_a_stopped_replica_shows_stopped(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        _, replica = await postgres_app(w)
        await w.fly.stop_machine("shop-db", replica)
        await w.fly.wait_for_state("shop-db", replica, "stopped", timeout=10)
        _, conversation = await w.bot.run("alice", "status shop staging")
        assert "primary started (nrt), replica stopped (nrt)" in conversation.all_text()


async def test_fly_failures_there_are_one_line_and_the_machines_still_show(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("GraphQL", status=500)
        w.sim.inject("Apps_list", status=500)
        outcome, conversation = await w.bot.run("alice", "status shop staging")
        text = conversation.all_text()
        assert outcome.status == "ok", text
        assert "Redis: Fly did not answer (500)" in text
        assert "Postgres: Fly did not answer (500)" in text
        for machine in await w.machines("shop-staging"):
            assert machine.id in text


async def test_without_databases_nothing_is_added(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        _, conversation = await w.bot.run("alice", "status shop staging")
        text = conversation.all_text()
        assert "databases" not in text and "Postgres" not in text and "Redis" not in text
