"""Prometheus answers over the demo org's series."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.fly.simulator.prometheus import PromError, parse_query
from tests.simulator.conftest import Sim

DAY = 86_400


async def query(fly: Sim, q: str, **params: Any) -> list[dict[str, Any]]:
    r = await fly.http.get("/prometheus/demo/api/v1/query", params={"query": q, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "vector"
    return body["data"]["result"]


async def test_selectors_and_matchers(demo: Sim) -> None:
    out = await query(demo, 'fly_edge_data_out{app="ping-go-prod"}')
    assert {(s["metric"]["region"], s["metric"]["__name__"]) for s in out} == {
        ("nrt", "fly_edge_data_out"),
        ("sin", "fly_edge_data_out"),
    }
    up = await query(demo, 'fly_instance_up{app=~"ping-go-.*", region!="sin"}')
    assert len(up) == 4  # dev web+cron, prod web+cron in nrt
    assert all(s["value"][1] == "1" for s in up)
    volumes = await query(demo, "fly_volume_size_bytes")
    assert [s["value"][1] for s in volumes] == [str(1024**3)]
    assert set(volumes[0]["metric"]) == {"__name__", "app", "region", "volume"}


async def test_counter_grows_and_aggregates(demo: Sim) -> None:
    now = time.time()
    earlier = await query(demo, "sum(fly_edge_data_out)", time=now - DAY)
    later = await query(demo, "sum(fly_edge_data_out)", time=now)
    assert float(later[0]["value"][1]) > float(earlier[0]["value"][1])

    by_region = await query(demo, "sum by (region) (increase(fly_edge_data_out[1d]))", time=now)
    totals = {s["metric"]["region"]: float(s["value"][1]) for s in by_region}
    assert set(totals) == {"nrt", "sin", "ams"}
    # prod nrt 11 kB/s + dev nrt 0.6 kB/s, a day's worth give or take the daily wave
    assert 0.5 * 11_600 * DAY < totals["nrt"] < 1.5 * 11_600 * DAY
    after = await query(demo, "sum(increase(fly_edge_data_out[1d])) by (app)", time=now)
    assert {s["metric"]["app"] for s in after} == {
        "ping-go-dev",
        "ping-go-prod",
        "hello-static",
    }
    rate = await query(demo, 'rate(fly_edge_data_out{app="ping-go-prod",region="sin"}[5m])')
    assert 3_500 <= float(rate[0]["value"][1]) <= 10_500
    assert "__name__" not in rate[0]["metric"]


async def test_range_query_and_post(demo: Sim) -> None:
    now = time.time()
    params = {
        "query": 'sum(rate(fly_edge_data_out{app="ping-go-prod"}[5m]))',
        "start": f"{now - 3600:.3f}",
        "end": f"{now:.3f}",
        "step": "5m",
    }
    r = await demo.http.post("/prometheus/demo/api/v1/query_range", data=params)
    body = r.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    [series] = body["data"]["result"]
    stamps = [t for t, _ in series["values"]]
    start, end = float(params["start"]), float(params["end"])
    assert len(stamps) == 13 and stamps[0] == start and stamps[-1] <= end
    assert all(float(v) > 0 for _, v in series["values"])
    # the personal org is the demo org once seeded
    personal = await demo.http.get(
        "/prometheus/personal/api/v1/query", params={"query": "fly_instance_up"}
    )
    assert len(personal.json()["data"]["result"]) == 6


async def test_bad_queries_are_prometheus_errors(demo: Sim) -> None:
    for q in ("fly_edge_data_out +", "rate(fly_edge_data_out)", "histogram_quantile(0.9, x)"):
        r = await demo.http.get("/prometheus/demo/api/v1/query", params={"query": q})
        assert r.status_code == 400
        assert r.json()["status"] == "error" and r.json()["errorType"] == "bad_data"
    unknown = await demo.http.get("/prometheus/nobody/api/v1/query", params={"query": "up"})
    assert unknown.status_code == 404


def test_parser_subset() -> None:
    parse_query('sum without (instance) (fly_instance_up{app="a"})')
    parse_query("max_over_time(fly_volume_used_pct[1h])")
    with pytest.raises(PromError):
        parse_query("fly_instance_up offset 5m")
