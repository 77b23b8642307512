"""The simulator's Prometheus as the usage collector reads it: fly_instance_up follows each
machine's state over time, samples older than the retention are gone, and /__sim/prometheus
controls the retention and an app's outbound rates."""

from __future__ import annotations

from typing import Any

from tests.simulator.conftest import Sim

DAY = 86_400


async def query(fly: Sim, q: str, org: str = "personal", **params: Any) -> list[dict[str, Any]]:
    r = await fly.http.get(f"/prometheus/{org}/api/v1/query", params={"query": q, **params})
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


async def test_instance_up_follows_the_machine_state_history(fly: Sim) -> None:
    app = await fly.create_app()
    machine = await fly.create_machine(app)
    await fly.wait(app, machine["id"], "started")
    fly.sim.advance(3600)
    r = await fly.http.post(f"/v1/apps/{app}/machines/{machine['id']}/stop")
    assert r.status_code == 200, r.text
    fly.sim.advance(3600)
    now = fly.sim.clock.now()
    selector = f'fly_instance_up{{instance="{machine["id"]}"}}'
    assert [s["value"][1] for s in await query(fly, selector, time=now - 5400)] == ["1"]
    assert [s["value"][1] for s in await query(fly, selector, time=now - 60)] == ["0"]
    assert await query(fly, selector, time=now - 3 * 3600) == []  # before it was created


async def test_retention_and_egress_are_controllable(fly: Sim) -> None:
    app = await fly.create_app()
    start = fly.sim.clock.now()
    r = await fly.http.post(
        "/__sim/prometheus", json={"app": app, "egress_bps": {"fra": 1000.0}, "since": start}
    )
    assert r.status_code == 200 and r.json()["apps"][app] == {"fra": 1000.0}
    fly.sim.advance(20 * DAY)
    now = fly.sim.clock.now()
    day = await query(fly, "sum(increase(fly_edge_data_out[1d]))", time=now)
    assert float(day[0]["value"][1]) == 1000.0 * DAY  # the daily rhythm sums to 0 a day
    assert await query(fly, "fly_edge_data_out", time=now - 16 * DAY) == []  # 15 days kept
    r = await fly.http.post("/__sim/prometheus", json={"retention_days": 30})
    assert r.status_code == 200, r.text
    assert await query(fly, "fly_edge_data_out", time=now - 16 * DAY) != []


async def test_bad_control_input_changes_nothing(fly: Sim) -> None:
    app = await fly.create_app()
    for body in (
        {"retention_days": 0},
        {"retention_days": "lots"},
        {"app": app, "egress_bps": {"fra": -1}},
        {"app": app, "egress_bps": [1]},
    ):
        r = await fly.http.post("/__sim/prometheus", json=body)
        assert r.status_code == 400, (body, r.text)
    assert fly.sim.state.apps[app].egress_bps == {}
    assert fly.sim.state.prom_retention_s == 15 * DAY
    r = await fly.http.post("/__sim/prometheus", json={"app": "nope", "egress_bps": {}})
    assert r.status_code == 404
