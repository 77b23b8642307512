"""Contract: every Machines API request the client sends, and every answer the simulator gives,
conforms to Fly's Machines OpenAPI spec (2024 file, plus the 2026 endpoints and the narrow
allowances in tests/contract/spec.py). The exchanges are recorded on the wire while the real
client drives the real simulator over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.fly import FlyAPIError, FlyClient, FlyConfig, RetryPolicy, Timeouts
from tests.contract.recording import (
    Exchange,
    RecordingTransport,
    is_machines_api,
    operation_of,
    violations,
)
from tests.contract.spec import ADDED_OPERATIONS, require_spec
from tests.fly.conftest import fast_timing, simulator_module

# Operations flybot's client uses; each must be seen, and validated, at least once.
EXPECTED_OPERATIONS = {
    "Apps_list",
    "Apps_show",
    "Machines_list",
    "Machines_create",
    "Machines_show",
    "Machines_update",
    "Machines_start",
    "Machines_stop",
    "Machines_restart",
    "Machines_delete",
    "Machines_wait",
    "Machines_cordon",
    "Machines_uncordon",
    "Machines_create_lease",
    "Machines_show_lease",
    "Machines_release_lease",
    "Machines_show_metadata",
    "Machines_upsert_metadata",
    "Machines_delete_metadata",
    "Machines_update_metadata",
    "Machines_list_events",
    "Secrets_list",
    "Secrets_update",
    "App_Certificates_list",
    "App_Certificates_acme_create",
    "App_Certificates_show",
    "App_Certificates_check",
    "App_Certificates_delete",
}


@pytest.fixture(scope="module")
def _spec_present() -> None:
    require_spec()


@pytest.fixture
async def recorded(_spec_present: None) -> AsyncIterator[list[Exchange]]:
    """Drive every Machines API call of the client against the simulator; yield the wire log."""
    simulator = simulator_module()
    sim = simulator.FlySimulator(seed=0, timing=fast_timing())
    sim.seed_demo()
    async with simulator.running_simulator(sim, port=0) as server:
        transport = RecordingTransport()
        config = FlyConfig(
            token="fm2_contract",
            flaps_base_url=server.base_url,
            api_base_url=server.base_url,
            timeouts=Timeouts(connect=1, read=5, write=2, pool=1, wait_margin=1),
            retry=RetryPolicy(attempts=2, backoff_initial=0.01, backoff_max=0.02, budget=5),
        )
        async with FlyClient(config, transport=transport) as fly:
            await exercise(fly)
        yield transport.exchanges


async def exercise(fly: FlyClient) -> None:
    apps = await fly.list_apps()
    app = apps[0].name
    await fly.get_app(app)
    config = {
        "image": "registry.fly.io/contract:1",
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": 8080,
                "autostop": "stop",
                "autostart": True,
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            }
        ],
        "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "15s", "timeout": "2s"}},
        "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
        "restart": {"policy": "on-failure"},
    }
    secrets = await fly.set_secrets(app, {"CONTRACT_A": "a", "CONTRACT_B": "b"})
    machine = await fly.create_machine(
        app, config, region="ams", min_secrets_version=secrets.version
    )
    await fly.list_machines(app, page_size=1)
    await fly.list_machines(app, region="ams", state=["started", "stopped"])
    await fly.list_machines(app, metadata={"fly_process_group": "app"})
    await fly.wait_for_state(app, machine.id, "started", timeout=5)
    shown = await fly.get_machine(app, machine.id)
    lease = await fly.acquire_lease(app, machine.id, ttl=30, description="contract")
    assert lease.nonce
    await fly.refresh_lease(app, machine.id, lease.nonce, ttl=30)
    await fly.get_lease(app, machine.id)
    with pytest.raises(FlyAPIError):  # an error answer is part of the contract too
        await fly.acquire_lease(app, machine.id, ttl=30)
    assert shown.config is not None
    new_config = shown.config.model_copy(deep=True)
    new_config.env = {"CONTRACT": "1"}
    await fly.update_machine(
        app,
        machine.id,
        new_config,
        current_version=shown.current_version,
        lease_nonce=lease.nonce,
        min_secrets_version=secrets.version,
    )
    await fly.wait_for_state(app, machine.id, "started", timeout=5)
    await fly.stop_machine(app, machine.id, signal="SIGTERM", timeout="5s", lease_nonce=lease.nonce)
    await fly.wait_for_state(app, machine.id, ["stopped", "suspended"], timeout=5)
    await fly.start_machine(app, machine.id, lease_nonce=lease.nonce)
    await fly.wait_for_state(app, machine.id, "settled", timeout=5)
    await fly.restart_machine(app, machine.id, signal="SIGINT", lease_nonce=lease.nonce)
    await fly.cordon_machine(app, machine.id, lease_nonce=lease.nonce)
    await fly.uncordon_machine(app, machine.id, lease_nonce=lease.nonce)
    await fly.release_lease(app, machine.id, lease.nonce)
    await fly.set_metadata(app, machine.id, "contract", "yes")
    await fly.get_metadata(app, machine.id)
    await fly.update_metadata(app, machine.id, {"x": "1", "contract": None})
    await fly.delete_metadata(app, machine.id, "x")
    await fly.list_events(app, machine.id, limit=10)
    with pytest.raises(FlyAPIError):
        await fly.get_machine(app, "no-such-machine")
    await fly.list_secrets(app)
    await fly.unset_secrets(app, ["CONTRACT_B"])
    await fly.add_certificate(app, "contract.example.com")
    await fly.list_certificates(app)
    await fly.get_certificate(app, "contract.example.com")
    await fly.check_certificate(app, "contract.example.com")
    await fly.delete_certificate(app, "contract.example.com")
    await fly.delete_machine(app, machine.id, force=True)
    await fly.wait_for_state(app, machine.id, "destroyed", timeout=5)


async def test_every_exchange_conforms_to_the_machines_spec(recorded: list[Exchange]) -> None:
    machines_api = [e for e in recorded if is_machines_api(e)]
    assert machines_api
    unknown = [str(e) for e in machines_api if operation_of(e) is None]
    assert not unknown, f"calls to paths the spec does not have: {unknown}"
    problems = [p for e in machines_api for p in violations(e)]
    assert not problems, "\n".join(problems)


async def test_every_client_operation_was_checked(recorded: list[Exchange]) -> None:
    seen = Counter(operation_of(e) for e in recorded if is_machines_api(e))
    missing = EXPECTED_OPERATIONS - set(seen)
    assert not missing, f"not exercised: {sorted(missing)}"
    # Both sources took part: the 2024 file, and the schemas written from the 2026 index.
    assert set(seen) & ADDED_OPERATIONS
    assert set(seen) - ADDED_OPERATIONS


async def test_error_answers_were_validated_too(recorded: list[Exchange]) -> None:
    errors = [e for e in recorded if is_machines_api(e) and e.status >= 400]
    assert {e.status for e in errors} >= {404, 409}
    for e in errors:
        assert json.loads(e.response_body).get("error")


# --- the checks are not vacuous ---------------------------------------------------------------


def fake_exchange(
    method: str, path: str, *, body: object = None, status: int = 200, answer: object = None
) -> Exchange:
    url = httpx.URL(f"http://127.0.0.1:1{path}")
    request_headers = httpx.Headers({"content-type": "application/json"} if body else {})
    return Exchange(
        method=method,
        url=url,
        request_headers=request_headers,
        request_body=json.dumps(body).encode() if body is not None else b"",
        status=status,
        response_headers=httpx.Headers({"content-type": "application/json"}),
        response_body=json.dumps(answer).encode() if answer is not None else b"",
    )


@pytest.mark.parametrize(
    ("exchange", "fragment"),
    [
        (
            fake_exchange(
                "POST", "/v1/apps/a/machines", body={"config": "not-an-object"}, answer={"id": "m"}
            ),
            "request",
        ),
        (
            fake_exchange("GET", "/v1/apps/a/machines/m", answer={"id": "m", "checks": "nope"}),
            "response",
        ),
        (
            fake_exchange(
                "GET", "/v1/apps/a/machines/m/wait?state=bogus&timeout=5", answer={"ok": True}
            ),
            "request",
        ),
        (
            fake_exchange(
                "GET", "/v1/apps/a/machines/m/wait?state=started&timeout=120", answer={"ok": True}
            ),
            "request",
        ),
        (
            fake_exchange("POST", "/v1/apps/a/secrets", body={"values": {"A": 1}}, answer={}),
            "request",
        ),
        (fake_exchange("POST", "/v1/apps/a/machines/m/start", status=201), "response"),
        (fake_exchange("GET", "/v1/apps/a", status=404, answer={"error": 3}), "response"),
    ],
    ids=[
        "config-type",
        "checks-type",
        "wait-state",
        "wait-timeout",
        "secret-type",
        "status",
        "error-body",
    ],
)
def test_validation_catches_what_breaks_the_contract(
    _spec_present: None, exchange: Exchange, fragment: str
) -> None:
    problems = violations(exchange)
    assert problems and any(f": {fragment}: " in p for p in problems), problems


def test_spec_allowances_keep_conforming_traffic_valid(_spec_present: None) -> None:
    good = [
        fake_exchange(
            "POST",
            "/v1/apps/a/machines/m/lease",
            body={"ttl": 13},
            status=201,
            answer={"status": "success", "data": {"nonce": "n", "expires_at": 1, "owner": "o"}},
        ),
        fake_exchange(
            "POST",
            "/v1/apps/a/machines/m",
            body={"config": {"services": [{"autostop": "suspend"}]}},
            status=422,
            answer={"error": "taken", "status": "name_taken"},
        ),
        fake_exchange(
            "GET",
            "/v1/apps/a/machines/m/wait?state=started,settled&timeout=60",
            answer={"ok": True, "state": "started"},
        ),
    ]
    for exchange in good:
        assert violations(exchange) == []
