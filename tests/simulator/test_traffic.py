"""The proxy's HTTP series in the simulator's Prometheus, over HTTP: responses by status and
the response-time histogram for each started machine with services, from `set_traffic`."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.simulator.conftest import Sim


async def query(fly: Sim, q: str) -> list[dict[str, Any]]:
    r = await fly.http.get("/prometheus/demo/api/v1/query", params={"query": q})
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def web_machines(fly: Sim, app: str) -> list[dict[str, Any]]:
    return [m for m in fly.sim.machines(app) if m["config"].get("services")]


async def test_rates_by_status_and_buckets_follow_the_declared_traffic(demo: Sim) -> None:
    demo.sim.set_traffic("ping-go-prod", since=time.time() - 3600)
    serving = len(web_machines(demo, "ping-go-prod"))
    assert serving >= 1
    sel = '{app="ping-go-prod"}'
    out = await query(demo, f"sum by (status) (rate(fly_app_http_responses_count{sel}[5m]))")
    rates = {s["metric"]["status"]: float(s["value"][1]) for s in out}
    assert rates == pytest.approx(
        {"200": 4.0 * serving, "404": 0.5 * serving, "500": 0.1 * serving}
    )
    buckets = await query(
        demo, f"sum by (le) (rate(fly_app_http_response_time_seconds_bucket{sel}[5m]))"
    )
    by_le = {s["metric"]["le"]: float(s["value"][1]) for s in buckets}
    assert by_le["+Inf"] == pytest.approx(4.6 * serving)
    assert by_le["0.05"] == pytest.approx(0.7 * 4.6 * serving)
    # machines without services (cron) serve nothing
    instances = await query(demo, f"fly_app_http_responses_count{sel}")
    assert {s["metric"]["instance"] for s in instances} == {
        m["id"] for m in web_machines(demo, "ping-go-prod")
    }


async def test_custom_rates_and_no_series_before_since(demo: Sim) -> None:
    demo.sim.set_traffic("ping-go-dev", since=time.time() + 600, rates={"503": 2.0})
    assert await query(demo, 'fly_app_http_responses_count{app="ping-go-dev"}') == []
    demo.sim.set_traffic("ping-go-dev", since=time.time() - 600, rates={"503": 2.0})
    out = await query(demo, 'sum(rate(fly_app_http_responses_count{app="ping-go-dev"}[5m]))')
    assert float(out[0]["value"][1]) == pytest.approx(2.0 * len(web_machines(demo, "ping-go-dev")))
