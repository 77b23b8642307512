"""Injected faults: each call either succeeds after retries or fails clearly within its budget;
nothing hangs, and the token never shows up in an error or a log line."""

from __future__ import annotations

import itertools
import logging
import socket
import time
import traceback
from typing import Any

import pytest

from bot.fly import (
    LAUNCH_ID_KEY,
    FlyAPIError,
    FlyTimeoutError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
    UnauthorizedError,
)
from tests.contract.recording import RecordingTransport
from tests.fly.conftest import FAST_RETRY, TOKEN, Fly, client_for, fast_timing, simulator_module
from tests.fly.proxy import ApplyThenFail, apply_then_fail_proxy
from tests.fly.test_client import an_app, base_config


def inject(fly: Fly, operation: str, **fault: Any) -> None:
    fly.sim.inject(operation, **fault)  # type: ignore[attr-defined]


def sent(fly: Fly, method: str, suffix: str) -> list[float]:
    return [t for m, p, t in fly.transport.sent if m == method and p.endswith(suffix)]


async def test_429_with_retry_after_is_waited_out_then_gives_up(fly: Fly) -> None:
    app = await an_app(fly.client)
    inject(fly, "Machines_list", status=429, rate=1.0, retry_after=1)
    client = client_for(
        fly.base_url,
        transport=fly.transport,
        retry=RetryPolicy(attempts=3, backoff_initial=0.01, backoff_max=0.02, budget=5),
    )
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as err:
        await client.list_machines(app)
    elapsed = time.monotonic() - started
    assert err.value.status == 429 and err.value.retry_after == 1
    times = sent(fly, "GET", "/machines")
    assert len(times) == 3
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))
    assert elapsed < 4


async def test_retry_after_beyond_the_budget_fails_at_once(fly: Fly) -> None:
    app = await an_app(fly.client)
    inject(fly, "Machines_list", status=429, rate=1.0, retry_after=30)
    started = time.monotonic()
    with pytest.raises(RateLimitedError):
        await fly.client.list_machines(app)
    assert time.monotonic() - started < 1.0
    assert len(sent(fly, "GET", "/machines")) == 1


async def test_429_without_retry_after_backs_off_and_succeeds(fly: Fly) -> None:
    app = await an_app(fly.client)
    inject(fly, "Machines_list", status=429, count=2)
    machines = await fly.client.list_machines(app)
    assert machines
    assert len(sent(fly, "GET", "/machines")) == 3


async def test_500_is_retried_then_reported(fly: Fly) -> None:
    app = await an_app(fly.client)
    inject(fly, "Apps_show", status=500, rate=1.0)
    started = time.monotonic()
    with pytest.raises(ServerError) as err:
        await fly.client.get_app(app)
    assert time.monotonic() - started < FAST_RETRY.budget
    assert len(sent(fly, "GET", f"/apps/{app}")) == FAST_RETRY.attempts
    assert err.value.status == 500
    assert err.value.method == "GET" and err.value.path == f"/v1/apps/{app}"
    assert str(err.value).startswith(f"GET /v1/apps/{app} -> 500: ")

    fly.sim.clear_faults()  # type: ignore[attr-defined]
    inject(fly, "Apps_show", status=503, count=2)
    assert (await fly.client.get_app(app)).name == app


async def test_slow_answers_time_out_within_the_budget(fly: Fly) -> None:
    app = await an_app(fly.client)
    inject(fly, "Machines_list", latency=3.0, rate=1.0)
    client = client_for(
        fly.base_url,
        transport=fly.transport,
        timeouts=Timeouts(connect=0.5, read=0.3, write=0.5, pool=0.5),
        retry=RetryPolicy(attempts=10, backoff_initial=0.01, backoff_max=0.02, budget=1.5),
    )
    started = time.monotonic()
    with pytest.raises(FlyTimeoutError) as err:
        await client.list_machines(app)
    assert time.monotonic() - started < 2.5
    assert err.value.status is None
    assert len(sent(fly, "GET", "/machines")) >= 2


async def test_connection_refused_is_a_clear_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}", transport=RecordingTransport())
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as err:
            await client.get_app("anything")
    finally:
        await client.aclose()
    assert time.monotonic() - started < FAST_RETRY.budget
    assert err.value.request_sent is False
    assert "ConnectError" in str(err.value)


async def test_token_never_appears_in_errors_or_logs(
    fly: Fly, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = await an_app(fly.client)
    errors: list[BaseException] = []
    inject(fly, "Apps_show", status=500, rate=1.0)
    inject(fly, "Machines_list", latency=3.0, rate=1.0)
    quick = client_for(
        fly.base_url,
        transport=fly.transport,
        timeouts=Timeouts(connect=0.5, read=0.2, write=0.5, pool=0.5),
        retry=RetryPolicy(attempts=2, backoff_initial=0.01, backoff_max=0.02, budget=1),
    )
    for call in (
        quick.get_app(app),
        quick.list_machines(app),
        quick.get_machine(app, "no-such-machine"),
    ):
        with pytest.raises(FlyAPIError) as err:
            await call
        errors.append(err.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = client_for(f"http://127.0.0.1:{port}")
    with pytest.raises(TransportError) as terr:
        await refused.get_app(app)
    errors.append(terr.value)
    await refused.aclose()
    await quick.aclose()

    secret = TOKEN.split("_", 1)[1]
    for exc in errors:
        text = "".join(traceback.format_exception(exc))
        assert secret not in text and secret not in repr(exc) and secret not in str(exc)
    assert caplog.records, "retries were logged"
    for record in caplog.records:
        assert secret not in record.getMessage()
    assert secret not in caplog.text


async def test_unauthorized_is_reported_without_the_token() -> None:
    simulator = simulator_module()
    sim = simulator.FlySimulator(seed=0, timing=fast_timing(), token="fm2_the-right-one")
    sim.seed_demo()
    async with simulator.running_simulator(sim, port=0) as server:
        client = client_for(server.base_url)
        try:
            with pytest.raises(UnauthorizedError) as err:
                await client.list_apps()
        finally:
            await client.aclose()
    assert err.value.status == 401
    assert TOKEN.split("_", 1)[1] not in str(err.value) + repr(err.value)
    assert "the-right-one" not in str(err.value)


@pytest.mark.parametrize("failure", [500, 408, None], ids=["500", "408", "no-answer"])
async def test_ambiguous_create_does_not_make_a_second_machine(
    fly: Fly, failure: int | None
) -> None:
    app = await an_app(fly.client)
    rule = ApplyThenFail(status=failure, stall=3.0)
    async with apply_then_fail_proxy(fly.base_url, rule) as proxy_url:
        client = client_for(
            proxy_url,
            timeouts=Timeouts(connect=0.5, read=1.0, write=0.5, pool=0.5),
            retry=RetryPolicy(attempts=4, backoff_initial=0.01, backoff_max=0.02, budget=5),
        )
        try:
            machine = await client.create_machine(
                app, base_config(dedupe="yes"), region="ams", launch_id=f"launch-{failure}"
            )
        finally:
            await client.aclose()
    assert rule.failed == 1
    matching = await fly.client.list_machines(app, metadata={LAUNCH_ID_KEY: f"launch-{failure}"})
    assert [m.id for m in matching] == [machine.id]
    assert len(fly.sim.calls_for("Machines_create")) == 1  # type: ignore[attr-defined]


async def test_create_failing_before_apply_is_retried(fly: Fly) -> None:
    app = await an_app(fly.client)
    inject(fly, "Machines_create", status=503, count=1)
    inject(fly, "Machines_create", timeout=3.0, count=1)  # hangs, then 504 without acting
    client = client_for(
        fly.base_url,
        transport=fly.transport,
        timeouts=Timeouts(connect=0.5, read=0.5, write=0.5, pool=0.5),
    )
    try:
        machine = await client.create_machine(app, base_config(), region="ams", launch_id="retry-1")
    finally:
        await client.aclose()
    assert len(sent(fly, "POST", "/machines")) == 3
    matching = await fly.client.list_machines(app, metadata={LAUNCH_ID_KEY: "retry-1"})
    assert [m.id for m in matching] == [machine.id]
    # Each failed try was checked for the launch id before the next one.
    lookups = [
        e
        for e in fly.transport.exchanges
        if e.method == "GET" and e.url.params.get(f"metadata.{LAUNCH_ID_KEY}") == "retry-1"
    ]
    assert len(lookups) >= 1
