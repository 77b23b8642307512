"""Issue 8 point 7: calls that are not safe to repeat are settled after a lost answer (Fly
acted, the client saw an error) by reading back what Fly holds, never by sending blindly
again. The simulator's `applied` faults carry the call out and then answer 500."""

from __future__ import annotations

from typing import Any

import pytest

from bot.fly import LeaseHeldError
from tests.fly.conftest import Fly
from tests.fly.test_client import an_app, base_config


def sim(fly: Fly) -> Any:
    return fly.sim


async def a_started_machine(fly: Fly) -> tuple[str, str]:
    app = await an_app(fly.client)
    machine = await fly.client.create_machine(app, base_config(), region="ams")
    await fly.client.wait_for_state(app, machine.id, "started", timeout=10)
    return app, machine.id


async def test_a_lease_granted_with_a_lost_answer_is_adopted_not_refused(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    sim(fly).inject("Machines_create_lease", status=500, applied=1.0, count=1)
    lease = await fly.client.acquire_lease(app, machine_id, ttl=30, description="flybot d-1")
    held = await fly.client.get_lease(app, machine_id)
    assert held is not None and held.nonce == lease.nonce
    assert held.description == "flybot d-1"


async def test_a_lease_refused_with_a_500_is_asked_for_again(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    sim(fly).inject("Machines_create_lease", status=500, count=2)
    lease = await fly.client.acquire_lease(app, machine_id, ttl=30, description="flybot d-2")
    assert lease.nonce
    assert len(sim(fly).calls_for("Machines_create_lease")) == 3


async def test_another_holders_lease_is_a_refusal_that_names_the_holder(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    await fly.client.acquire_lease(app, machine_id, ttl=30, description="bob: fly deploy")
    sim(fly).inject("Machines_create_lease", status=500, count=1)  # an ambiguous first try
    with pytest.raises(LeaseHeldError) as refused:
        await fly.client.acquire_lease(app, machine_id, ttl=30, description="flybot d-3")
    assert "bob: fly deploy" in str(refused.value) and "you@example.com" in str(refused.value)


async def test_an_update_applied_with_a_lost_answer_is_not_sent_again(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    machine = await fly.client.get_machine(app, machine_id)
    sim(fly).inject("Machines_update", status=500, applied=1.0, count=1)
    updated = await fly.client.update_machine(
        app, machine_id, base_config(step="2"), current_version=machine.version
    )
    assert updated.metadata.get("step") == "2" and updated.version != machine.version
    assert len(sim(fly).calls_for("Machines_update")) == 1


async def test_an_update_without_current_version_is_not_repeated_after_a_lost_answer(
    fly: Fly,
) -> None:
    app, machine_id = await a_started_machine(fly)
    sim(fly).inject("Machines_update", status=500, applied=1.0, count=1)
    await fly.client.update_machine(app, machine_id, base_config(step="3"))
    assert len(sim(fly).calls_for("Machines_update")) == 1  # one replacement, not two


async def test_a_restart_applied_with_a_lost_answer_restarts_once(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    sim(fly).inject("Machines_restart", status=500, applied=1.0, count=1)
    await fly.client.restart_machine(app, machine_id)
    assert len(sim(fly).calls_for("Machines_restart")) == 1
    events = await fly.client.list_events(app, machine_id, limit=50)
    assert [e.type for e in events].count("restart") == 1


async def test_a_start_applied_with_a_lost_answer_is_not_sent_again(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    await fly.client.stop_machine(app, machine_id)
    await fly.client.wait_for_state(app, machine_id, "stopped", timeout=10)
    sim(fly).inject("Machines_start", status=500, applied=1.0, count=1)
    await fly.client.start_machine(app, machine_id)
    assert len(sim(fly).calls_for("Machines_start")) == 1


async def test_secrets_set_with_a_lost_answer_are_not_set_again(fly: Fly) -> None:
    app = await an_app(fly.client)
    sim(fly).inject("Secrets_update", status=500, applied=1.0, count=1)
    await fly.client.set_secrets(app, {"API_TOKEN": "s3cret", "OLD": None})
    assert len(sim(fly).calls_for("Secrets_update")) == 1
    assert "API_TOKEN" in {s.name for s in await fly.client.list_secrets(app)}


async def test_a_create_is_not_posted_again_while_fly_lists_it_late(fly: Fly) -> None:
    app = await an_app(fly.client)
    sim(fly).set_timing(list_lag_s=0.4)
    sim(fly).inject("Machines_create", status=500, applied=1.0, count=1)
    machine = await fly.client.create_machine(app, base_config(), region="ams", launch_id="lag-1")
    sim(fly).set_timing(list_lag_s=0.0)
    assert len(sim(fly).calls_for("Machines_create")) == 1
    made = [m for m in await fly.client.list_machines(app) if m.metadata.get("flybot_launch_id")]
    assert [m.id for m in made] == [machine.id]


async def test_a_stop_applied_with_a_lost_answer_is_resent_harmlessly(fly: Fly) -> None:
    # Fly answers a stop of a stopping or stopped machine with success and changes nothing,
    # so the client resends a stop after a lost answer instead of reading back.
    app, machine_id = await a_started_machine(fly)
    sim(fly).inject("Machines_stop", status=500, applied=1.0, count=1)
    await fly.client.stop_machine(app, machine_id)
    assert len(sim(fly).calls_for("Machines_stop")) == 2
    await fly.client.wait_for_state(app, machine_id, "stopped", timeout=10)
    events = await fly.client.list_events(app, machine_id, limit=50)
    assert [e.type for e in events].count("stop") == 1


async def test_a_cordon_applied_with_a_lost_answer_is_resent_harmlessly(fly: Fly) -> None:
    app, machine_id = await a_started_machine(fly)
    sim(fly).inject("Machines_cordon", status=500, applied=1.0, count=1)
    await fly.client.cordon_machine(app, machine_id)
    assert len(sim(fly).calls_for("Machines_cordon")) == 2
    machine = await fly.client.get_machine(app, machine_id)
    assert machine.cordoned is True
    await fly.client.uncordon_machine(app, machine_id)
    assert (await fly.client.get_machine(app, machine_id)).cordoned is False
