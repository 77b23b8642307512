"""Every FlyClient call, over real HTTP, against the Fly simulator on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

import bot.fly.client as client_module
from bot.fly import (
    LAUNCH_ID_KEY,
    ConflictError,
    FlyClient,
    FlyTimeoutError,
    LeaseHeldError,
    MachineConfig,
    NotFoundError,
)
from tests.fly.conftest import Fly

IMAGE = "registry.fly.io/flybot-test:1"


def base_config(**metadata: str) -> MachineConfig:
    return MachineConfig.model_validate(
        {
            "image": IMAGE,
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "env": {"PORT": "8080"},
            "metadata": {"fly_platform_version": "v2", "fly_process_group": "app", **metadata},
        }
    )


async def an_app(client: FlyClient) -> str:
    apps = await client.list_apps()
    assert apps, "the simulator's demo seed has apps"
    return apps[0].name


async def test_apps(fly: Fly) -> None:
    apps = await fly.client.list_apps()
    assert apps
    app = await fly.client.get_app(apps[0].name)
    assert app.name == apps[0].name
    with pytest.raises(NotFoundError) as err:
        await fly.client.get_app("no-such-app-anywhere")
    assert err.value.status == 404
    assert err.value.path == "/v1/apps/no-such-app-anywhere"


async def test_machine_lifecycle(fly: Fly) -> None:
    c = fly.client
    app = await an_app(c)
    machine = await c.create_machine(app, base_config(), region="ams", name="lifecycle-1")
    assert machine.id and machine.region == "ams"
    assert machine.metadata[LAUNCH_ID_KEY]
    assert machine.current_version

    await c.wait_for_state(app, machine.id, "started", timeout=5)
    got = await c.get_machine(app, machine.id)
    assert got.state == "started"
    assert got.config is not None and got.config.image == IMAGE
    assert got.image_ref is not None

    # Leased: changes without the nonce are refused, with it they go through.
    lease = await c.acquire_lease(app, machine.id, ttl=30, description="test")
    assert lease.nonce
    with pytest.raises(LeaseHeldError):
        await c.acquire_lease(app, machine.id, ttl=30)
    config = got.config.model_copy(deep=True)
    config.env = {"PORT": "8080", "NEW": "1"}
    with pytest.raises(ConflictError):
        await c.update_machine(app, machine.id, config, current_version=got.current_version)
    updated = await c.update_machine(
        app, machine.id, config, current_version=got.current_version, lease_nonce=lease.nonce
    )
    assert updated.current_version != got.current_version
    assert updated.config is not None and updated.config.env == {"PORT": "8080", "NEW": "1"}
    # The whole config went over: the metadata (launch id included) is still there.
    assert updated.metadata.get(LAUNCH_ID_KEY) == machine.metadata[LAUNCH_ID_KEY]
    with pytest.raises(ConflictError):  # stale current_version
        await c.update_machine(
            app, machine.id, config, current_version=got.current_version, lease_nonce=lease.nonce
        )

    refreshed = await c.refresh_lease(app, machine.id, lease.nonce, ttl=30)
    assert refreshed.nonce == lease.nonce
    held = await c.get_lease(app, machine.id)
    assert held is not None and held.nonce == lease.nonce

    await c.wait_for_state(app, machine.id, "started", timeout=5)
    await c.stop_machine(app, machine.id, lease_nonce=lease.nonce)
    stopped = await c.wait_for_state(app, machine.id, "stopped", timeout=5)
    assert stopped.ok
    await c.start_machine(app, machine.id, lease_nonce=lease.nonce)
    await c.wait_for_state(app, machine.id, "started", timeout=5)
    await c.restart_machine(app, machine.id, lease_nonce=lease.nonce)
    await c.wait_for_state(app, machine.id, "started", timeout=5)
    await c.cordon_machine(app, machine.id, lease_nonce=lease.nonce)
    await c.uncordon_machine(app, machine.id, lease_nonce=lease.nonce)

    await c.release_lease(app, machine.id, lease.nonce)
    assert await c.get_lease(app, machine.id) is None

    events = await c.list_events(app, machine.id)
    assert events and all(e.type for e in events)

    await c.delete_machine(app, machine.id, force=True)
    await c.wait_for_state(app, machine.id, "destroyed", timeout=5)
    remaining = {m.id for m in await c.list_machines(app)}
    assert machine.id not in remaining


async def test_metadata(fly: Fly) -> None:
    c = fly.client
    app = await an_app(c)
    machine = await c.create_machine(app, base_config(), region="ams")
    await c.set_metadata(app, machine.id, "team", "platform")
    assert (await c.get_metadata(app, machine.id))["team"] == "platform"
    await c.update_metadata(app, machine.id, {"a": "1", "team": None})
    meta = await c.get_metadata(app, machine.id)
    assert meta["a"] == "1" and "team" not in meta
    await c.delete_metadata(app, machine.id, "a")
    assert "a" not in await c.get_metadata(app, machine.id)


async def test_list_filters_and_paging(fly: Fly) -> None:
    c = fly.client
    app = await an_app(c)
    made = [
        await c.create_machine(app, base_config(batch="paging"), region=region)
        for region in ("ams", "ams", "nrt")
    ]
    made_ids = {m.id for m in made}

    everything = await c.list_machines(app)
    paged = await c.list_machines(app, page_size=1)
    assert [m.id for m in paged] == [m.id for m in everything]
    assert len({m.id for m in paged}) == len(paged)
    pages = [e for e in fly.transport.exchanges if e.url.params.get("limit") == "1"]
    assert len(pages) >= len(everything), "one request per page"

    batch = await c.list_machines(app, metadata={"batch": "paging"})
    assert {m.id for m in batch} == made_ids
    in_nrt = await c.list_machines(app, region="nrt", metadata={"batch": "paging"})
    assert [m.id for m in in_nrt] == [made[2].id]

    for m in made:
        await c.wait_for_state(app, m.id, "started", timeout=5)
    await c.stop_machine(app, made[0].id)
    await c.wait_for_state(app, made[0].id, "stopped", timeout=5)
    stopped = await c.list_machines(app, state="stopped", metadata={"batch": "paging"})
    assert [m.id for m in stopped] == [made[0].id]


async def test_wait_loops_past_the_per_call_cap_until_its_deadline(
    fly: Fly, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = fly.client
    app = await an_app(c)
    machine = await c.create_machine(app, base_config(), region="ams")
    await c.wait_for_state(app, machine.id, "started", timeout=5)
    # Fly caps a wait call at 60 s; with the cap at 1 s the loop shows in seconds.
    monkeypatch.setattr(client_module, "MAX_WAIT_PER_CALL", 1)
    before = len(fly.transport.exchanges)
    started = time.monotonic()
    with pytest.raises(FlyTimeoutError) as err:
        await c.wait_for_state(app, machine.id, "stopped", timeout=2.5)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 4.5
    assert "did not reach stopped" in str(err.value)
    waits = [e for e in fly.transport.exchanges[before:] if e.path.endswith("/wait")]
    assert len(waits) >= 2
    assert all(e.url.params["timeout"] == "1" for e in waits)


async def test_secrets_set_and_unset_many_in_one_call(fly: Fly) -> None:
    c = fly.client
    app = await an_app(c)
    first = await c.set_secrets(app, {"API_TOKEN": "s3cret-value", "OTHER": "x"})
    assert first.version is not None
    names = {s.name for s in await c.list_secrets(app)}
    assert {"API_TOKEN", "OTHER"} <= names
    second = await c.unset_secrets(app, ["OTHER"])
    assert second.version is not None and second.version > first.version
    assert "OTHER" not in {s.name for s in await c.list_secrets(app)}
    secret_calls = [e for e in fly.transport.exchanges if e.path.endswith("/secrets")]
    assert len([e for e in secret_calls if e.method == "POST"]) == 2
    assert all("show_secrets" not in str(e.url) for e in secret_calls)
    listed = [e for e in secret_calls if e.method == "GET"]
    assert all(b"s3cret-value" not in e.response_body for e in listed)


async def test_certificates(fly: Fly) -> None:
    c = fly.client
    app = await an_app(c)
    added = await c.add_certificate(app, "www.example.com")
    assert added.hostname == "www.example.com"
    assert added.dns_requirements is not None
    assert "www.example.com" in {cert.hostname for cert in await c.list_certificates(app)}
    shown = await c.get_certificate(app, "www.example.com")
    assert shown.status
    checked = await c.check_certificate(app, "www.example.com")
    assert checked.hostname == "www.example.com"
    await c.delete_certificate(app, "www.example.com")
    with pytest.raises(NotFoundError):
        await c.get_certificate(app, "www.example.com")


async def test_releases_and_graphql(fly: Fly) -> None:
    c = fly.client
    app = await an_app(c)
    release = await c.create_release(app, IMAGE, definition={"app": app}, strategy="rolling")
    assert release.id and release.version
    await c.update_release(release.id, "running")
    await c.update_release(release.id, "complete")
    releases = await c.list_releases(app)
    assert release.id in {r.id for r in releases}
    current = await c.current_release(app)
    assert current is not None
    assert current.version == release.version
    assert current.image_ref == IMAGE


async def test_prometheus_instant_and_range(fly: Fly) -> None:
    c = fly.client
    now = time.time()
    instant = await c.prom_query("sum(fly_edge_data_out) by (region)", at=now)
    assert isinstance(instant, list)
    for series in instant:
        assert len(series.samples) == 1
    ranged = await c.prom_query_range(
        "sum(rate(fly_edge_data_out[5m]))", start=now - 3600, end=now, step=300
    )
    for series in ranged:
        assert series.samples
        assert all(now - 3700 <= s.timestamp <= now + 1 for s in series.samples)
    queries = [e for e in fly.transport.exchanges if "/prometheus/personal/api/v1/" in e.path]
    assert len(queries) == 2
