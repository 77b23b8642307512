"""Fly's log polling endpoint (`GET /api/v1/apps/{app}/logs`) through FlyClient, against the
simulator over HTTP: what its machines print, paging by next_token, filters, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bot.fly import FlyAPIError, FlyClient, NotFoundError
from tests.fly.conftest import Fly

APP = "logs-app"


def config(image: str, **extra: Any) -> dict[str, Any]:
    return {
        "image": image,
        "init": {"cmd": ["/app/shop", "serve"]},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": 8080,
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
                "checks": [{"type": "http", "method": "GET", "path": "/healthz"}],
            }
        ],
        **extra,
    }


async def app_with(fly: Fly, image: str, region: str = "nrt") -> str:
    if APP not in fly.sim.state.apps:  # type: ignore[attr-defined]
        await fly.client.create_app(APP, "personal")
    machine = await fly.client.create_machine(APP, config(image), region=region)
    return machine.id


async def messages_until(
    client: FlyClient, machine_id: str, wanted: str, *, tries: int = 200
) -> list[str]:
    for _ in range(tries):
        lines = await client.recent_logs(APP, lines=500, instance=machine_id)
        messages = [e.message for e in lines]
        if any(wanted in m for m in messages):
            return messages
        await asyncio.sleep(0.02)
    raise AssertionError(f"{wanted!r} never logged; got {messages}")


async def test_a_healthy_machine_logs_its_boot_and_its_app(fly: Fly) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v1")
    messages = await messages_until(fly.client, machine_id, "listening on")
    assert messages[0] == "Pulling container image registry.fly.io/shop:v1"
    assert "Preparing to run: `/app/shop serve` as root" in messages
    assert not any("ERROR" in m or "panic" in m for m in messages)
    entries = await fly.client.recent_logs(APP, lines=5, instance=machine_id)
    assert {e.instance for e in entries} == {machine_id} and {e.region for e in entries} == {"nrt"}
    assert all(e.timestamp.endswith("Z") and e.id for e in entries)


async def test_a_broken_image_logs_its_failing_health_endpoint(fly: Fly) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v2-broken")
    messages = await messages_until(fly.client, machine_id, "GET /healthz 500")
    assert any("DATABASE_URL unreachable" in m for m in messages)
    entries = await fly.client.recent_logs(APP, lines=500, instance=machine_id)
    health = [e for e in entries if "/healthz 500" in e.message]
    assert health and all(e.level == "error" for e in health)


async def test_a_crashloop_image_logs_a_stack_trace_and_its_exit(fly: Fly) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v2-crashloop")
    messages = await messages_until(fly.client, machine_id, "exited normally with code: 1")
    panic = messages.index(
        "panic: runtime error: invalid memory address or nil pointer dereference"
    )
    assert "goroutine 1 [running]:" in messages[panic:]
    assert messages.index("Main child exited normally with code: 1") > panic


async def test_an_oom_image_is_killed_for_memory(fly: Fly) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v2-oom")
    messages = await messages_until(fly.client, machine_id, "Out of memory: Killed process")
    assert messages
    events = await fly.client.list_events(APP, machine_id)
    exits = [e.request for e in events if e.type == "exit" and isinstance(e.request, dict)]
    assert exits and exits[0]["exit_event"]["oom_killed"] is True
    assert exits[0]["exit_event"]["exit_code"] == 137


async def test_five_hundred_lines_page_by_next_token_and_the_tail_is_the_newest(
    fly: Fly,
) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v1")
    await messages_until(fly.client, machine_id, "listening on")
    fly.sim.emit_logs(APP, machine_id, [f"line {i:03d}" for i in range(500)])  # type: ignore[attr-defined]
    first = await fly.client.get_app_logs(APP)
    assert len(first.entries) == 100 and first.next_token  # a page is 100 lines
    second = await fly.client.get_app_logs(APP, next_token=first.next_token)
    assert second.entries[0].timestamp >= first.entries[-1].timestamp
    assert {e.id for e in first.entries}.isdisjoint(e.id for e in second.entries)
    tail = await fly.client.recent_logs(APP, lines=50)
    assert [e.message for e in tail] == [f"line {i:03d}" for i in range(450, 500)]
    calls = [c for c in fly.sim.calls if c.operation == "Logs_list"]  # type: ignore[attr-defined]
    assert len(calls) >= 2 + 6  # two pages above, then every page to the end
    # caught up: an empty page keeps the token
    last = calls[-1].query["next_token"]
    again = await fly.client.get_app_logs(APP, next_token=last)
    assert again.entries == [] and again.next_token == last


async def test_instance_and_region_filter_the_lines(fly: Fly) -> None:
    one = await app_with(fly, "registry.fly.io/shop:v1", region="nrt")
    two = await app_with(fly, "registry.fly.io/shop:v1", region="syd")
    await messages_until(fly.client, two, "listening on")
    fly.sim.emit_logs(APP, one, ["from one"])  # type: ignore[attr-defined]
    fly.sim.emit_logs(APP, two, ["from two"])  # type: ignore[attr-defined]
    syd = await fly.client.recent_logs(APP, lines=500, region="syd")
    assert {e.instance for e in syd} == {two} and "from two" in [e.message for e in syd]
    only_one = await fly.client.recent_logs(APP, lines=500, instance=one)
    assert {e.instance for e in only_one} == {one}
    both = [e.message for e in await fly.client.recent_logs(APP, lines=2)]
    assert both == ["from one", "from two"]


async def test_the_wire_shape_is_flyctls(fly: Fly) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v1")
    await messages_until(fly.client, machine_id, "listening on")
    async with httpx.AsyncClient(
        base_url=fly.base_url, headers={"Authorization": "Bearer x"}
    ) as http:
        r = await http.get(f"/api/v1/apps/{APP}/logs", params={"instance": machine_id})
    body = r.json()
    assert r.status_code == 200 and set(body) == {"data", "meta"}
    item = body["data"][0]
    assert set(item["attributes"]) >= {
        "timestamp",
        "message",
        "level",
        "instance",
        "region",
        "meta",
    }
    assert "next_token" in body["meta"]


async def test_unknown_app_and_a_forged_token_are_errors(fly: Fly) -> None:
    with pytest.raises(NotFoundError):
        await fly.client.get_app_logs("no-such-app")
    await app_with(fly, "registry.fly.io/shop:v1")
    with pytest.raises(FlyAPIError) as raised:
        await fly.client.get_app_logs(APP, next_token="bm9wZQ")
    assert raised.value.status == 400


async def test_429_and_500_are_retried(fly: Fly) -> None:
    machine_id = await app_with(fly, "registry.fly.io/shop:v1")
    await messages_until(fly.client, machine_id, "listening on")
    fly.sim.inject("Logs_list", status=429, count=1, retry_after=0)  # type: ignore[attr-defined]
    fly.sim.inject("Logs_list", status=500, count=1)  # type: ignore[attr-defined]
    entries = await fly.client.recent_logs(APP, lines=3, instance=machine_id)
    assert len(entries) == 3
    statuses = [c.status for c in fly.sim.calls if c.operation == "Logs_list"]  # type: ignore[attr-defined]
    assert 429 in statuses and 500 in statuses and statuses[-1] == 200


async def test_the_demo_orgs_machines_have_printed_their_boot_and_recent_requests(
    fly: Fly,
) -> None:
    entries = await fly.client.recent_logs("ping-go-prod", lines=500)
    messages = [e.message for e in entries]
    assert any(m.startswith("Pulling container image registry.fly.io/ping-go:") for m in messages)
    assert any("listening on 0.0.0.0:8080" in m for m in messages)
    assert messages[-1].startswith("GET /ping 200 OK")
