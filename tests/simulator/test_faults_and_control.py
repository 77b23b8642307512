"""Auth, request ids, injected faults (seeded, reproducible), the call log, /__sim/."""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.fly.simulator import FlySimulator, SimulatorTiming, running_simulator
from tests.simulator.conftest import AUTH, Sim


async def test_auth_and_request_ids(fly: Sim) -> None:
    async with httpx.AsyncClient(base_url=fly.base_url, timeout=5) as anon:
        for headers in ({}, {"Authorization": "Token x"}, {"Authorization": "Bearer"}):
            r = await anon.get("/v1/apps", params={"org_slug": "personal"}, headers=headers)
            assert r.status_code == 401 and r.json()["status"] == "unknown"
            assert r.headers["fly-request-id"]
        ok = await anon.get(
            "/v1/apps", params={"org_slug": "personal"}, headers={"Authorization": "FlyV1 fm2_x"}
        )
        assert ok.status_code == 200
        assert (await anon.get("/__sim/calls")).status_code == 200  # test control: no token
    answers = [
        await fly.http.get("/v1/apps/none"),
        await fly.http.get("/no/such/path"),
        await fly.http.get("/v1/apps", params={"org_slug": "personal"}),
    ]
    assert [a.status_code for a in answers] == [404, 404, 200]
    ids = [a.headers["fly-request-id"] for a in answers]
    assert len(set(ids)) == 3 and all(ids)
    assert answers[1].json()["error"].startswith("not found")


async def test_a_configured_token_is_required() -> None:
    sim = FlySimulator(token="FlyV1 fm2_right")
    async with (
        running_simulator(sim) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=5) as http,
    ):
        params = {"org_slug": "personal"}
        wrong = await http.get("/v1/apps", params=params, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        for header in ("Bearer fm2_right", "FlyV1 fm2_right"):
            right = await http.get("/v1/apps", params=params, headers={"Authorization": header})
            assert right.status_code == 200


async def test_status_faults_with_retry_after_and_count(fly: Sim) -> None:
    app = await fly.create_app()
    fly.sim.inject("Apps_show", status=429, retry_after=2, count=2)
    fly.sim.inject("Apps_show", status=503, rate=0.0)
    got = [await fly.http.get(f"/v1/apps/{app}") for _ in range(3)]
    assert [r.status_code for r in got] == [429, 429, 200]
    assert got[0].headers["retry-after"] == "2" and got[0].json()["error"]
    assert got[0].headers["fly-request-id"]
    fly.sim.inject("Apps_show", status=502)
    assert (await fly.http.get(f"/v1/apps/{app}")).status_code == 502
    assert "retry-after" not in (await fly.http.get(f"/v1/apps/{app}")).headers
    fly.sim.clear_faults("Apps_show")
    assert (await fly.http.get(f"/v1/apps/{app}")).status_code == 200
    shows = fly.sim.calls_for("Apps_show")
    assert [c.fault for c in shows] == [
        "status:429",
        "status:429",
        None,
        "status:502",
        "status:502",
        None,
    ]


async def test_a_faulted_create_does_nothing(fly: Sim) -> None:
    app = await fly.create_app()
    fly.sim.inject("Machines_create", status=500)
    r = await fly.http.post(f"/v1/apps/{app}/machines", json={"config": {"image": "a/b:1"}})
    assert r.status_code == 500
    assert fly.sim.machines(app) == []


async def test_latency_and_timeouts(fly: Sim) -> None:
    app = await fly.create_app()
    fly.sim.inject("Apps_show", latency_ms=200)
    started = time.monotonic()
    assert (await fly.http.get(f"/v1/apps/{app}")).status_code == 200
    assert time.monotonic() - started >= 0.2
    fly.sim.clear_faults()
    fly.sim.inject("Apps_show", timeout=0.3)
    started = time.monotonic()
    r = await fly.http.get(f"/v1/apps/{app}")
    assert r.status_code == 504 and time.monotonic() - started >= 0.3
    fly.sim.clear_faults()
    fly.sim.inject("Apps_show", timeout=True)  # hangs longer than this client waits
    try:
        await fly.http.get(f"/v1/apps/{app}", timeout=0.2)
        raise AssertionError("expected a timeout")
    except httpx.ReadTimeout:
        pass
    # the fixture's shutdown wakes the hung call: the test ends at once


async def faults_seen(seed: int) -> list[int]:
    sim = FlySimulator(seed=seed, timing=SimulatorTiming.fast())
    sim.create_app("a")
    sim.inject("*", status=500, rate=0.3)
    sim.inject("Apps_show", status=429, rate=0.2)
    async with (
        running_simulator(sim) as server,
        httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=5) as http,
    ):
        return [(await http.get("/v1/apps/a")).status_code for _ in range(60)]


async def test_faults_at_a_seeded_rate_are_reproducible() -> None:
    first, again, other = await faults_seen(3), await faults_seen(3), await faults_seen(4)
    assert first == again
    assert first != other
    assert set(first) == {200, 429, 500}
    assert 8 <= first.count(500) <= 30


async def test_call_log(fly: Sim) -> None:
    app = await fly.create_app()
    await fly.create_machine(app, region="ams")
    await fly.http.get(f"/v1/apps/{app}/machines", params={"region": "ams"})
    calls = fly.sim.calls
    assert [c.operation for c in calls] == ["Apps_create", "Machines_create", "Machines_list"]
    create = calls[1]
    assert create.method == "POST" and create.path == f"/v1/apps/{app}/machines"
    assert create.status == 200 and create.body["region"] == "ams" and create.fault is None
    assert calls[2].query == {"region": "ams"}
    assert abs(calls[2].timestamp - time.time()) < 5
    served = (await fly.http.get("/__sim/calls", params={"operation": "Machines_list"})).json()
    assert [c["operation"] for c in served["calls"]] == ["Machines_list"]
    assert (await fly.http.delete("/__sim/calls")).status_code == 200
    assert fly.sim.calls == []


async def test_control_api_over_http(fly: Sim) -> None:
    fault = {"operation": "Apps_list", "status": 503, "rate": 1, "latency_ms": 10, "count": 1}
    added = await fly.http.post("/__sim/faults", json=fault)
    assert added.status_code == 201 and added.json()["fault"]["latency"] == 0.01
    assert len((await fly.http.get("/__sim/faults")).json()["faults"]) == 1
    apps = await fly.http.get("/v1/apps", params={"org_slug": "personal"})
    assert apps.status_code == 503
    assert (await fly.http.get("/__sim/faults")).json()["faults"] == []  # count used up
    await fly.http.post("/__sim/faults", json={"operation": "*", "status": 500})
    await fly.http.delete("/__sim/faults")
    assert (await fly.http.get("/v1/apps", params={"org_slug": "personal"})).status_code == 200
    bad = await fly.http.post("/__sim/faults", json={"operation": "*", "rate": 2})
    assert bad.status_code == 400

    assert (await fly.http.post("/__sim/seed", json={"name": "demo"})).status_code == 200
    names = [a["name"] for a in (await fly.http.get("/v1/apps?org_slug=demo")).json()["apps"]]
    assert names == ["ping-go-dev", "ping-go-prod", "hello-static"]
    assert (await fly.http.post("/__sim/seed", json={"name": "nope"})).status_code == 400
    image = await fly.http.get("/__sim/images", params={"image": "registry.fly.io/a:v1-missing"})
    assert image.json()["exists"] is False
    before = time.time()
    moved = await fly.http.post("/__sim/clock", json={"advance": 3600})
    assert moved.json()["now"] >= before + 3600


async def test_shutdown_does_not_wait_for_hung_calls() -> None:
    sim = FlySimulator(timing=SimulatorTiming.fast())
    sim.inject("*", timeout=30)
    started = time.monotonic()
    async with running_simulator(sim) as server:
        http = httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10)
        hung = asyncio.create_task(http.get("/v1/apps", params={"org_slug": "personal"}))
        await asyncio.sleep(0.1)
    response = await asyncio.wait_for(hung, 5)
    await http.aclose()
    assert response.status_code == 504
    assert time.monotonic() - started < 3
