"""The simulator's JSON has the field names and types of Fly's Machines OpenAPI spec
(../shared/fly-api/machines-openapi-2024.yaml; WaitMachineResponse from the 2026 index)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from tests.simulator.conftest import Sim, machine_config

SPEC = (
    Path(__file__).resolve().parents[2].parent / "shared" / "fly-api" / "machines-openapi-2024.yaml"
)
# Fields the 2026 spec added to Machine (endpoint-index-2026.md).
MACHINE_2026 = frozenset(
    {"version", "cordoned", "host_status", "host_features", "incomplete_config"}
)
WAIT_2026 = {
    "type": "object",
    "required": ["ok"],
    "additionalProperties": False,
    "properties": {
        "ok": {"type": "boolean"},
        "state": {"type": "string"},
        "version": {"type": "string"},
        "event_id": {"type": "string"},
    },
}


@cache
def components() -> dict[str, Any]:
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} not found")
    found: dict[str, Any] = yaml.safe_load(SPEC.read_text())["components"]
    return found


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = components()["schemas"][name]
    return found


def conforms(name: str, value: Any) -> None:
    validator = OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": components()})
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(value)]
    assert not errors, f"{name}: {errors}"


def known_fields(name: str, value: dict[str, Any], extra: frozenset[str] = frozenset()) -> None:
    unknown = set(value) - set(schema(name)["properties"]) - extra
    assert not unknown, f"{name} has fields the spec does not name: {sorted(unknown)}"


def machine_conforms(machine: dict[str, Any]) -> None:
    conforms("Machine", machine)
    known_fields("Machine", machine, MACHINE_2026)
    known_fields("ImageRef", machine["image_ref"])
    for check in machine["checks"]:
        known_fields("CheckStatus", check)
    for event in machine["events"]:
        known_fields("MachineEvent", event)
    assert machine["checks"] and machine["events"]


async def test_machine_lease_wait_and_error_shapes(fly: Sim) -> None:
    app = await fly.create_app()
    created = await fly.create_machine(app, config=machine_config("registry.fly.io/x:v1-crashloop"))
    url = f"/v1/apps/{app}/machines/{created['id']}"
    machine_conforms(created)
    wait = await fly.wait(app, created["id"], "started")
    assert OAS30Validator(WAIT_2026).is_valid(wait.json()), wait.json()
    machine_conforms(await fly.machine(app, created["id"]))
    for item in (await fly.http.get(f"/v1/apps/{app}/machines")).json():
        machine_conforms(item)
    for event in (await fly.http.get(f"{url}/events")).json():
        conforms("MachineEvent", event)
        known_fields("MachineEvent", event)

    lease = await fly.http.post(f"{url}/lease", json={"ttl": 10, "description": "spec"})
    conforms("Lease", lease.json()["data"])
    assert set(lease.json()["data"]) == set(schema("Lease")["properties"])
    conforms("Lease", (await fly.http.get(f"{url}/lease")).json()["data"])

    errors = [
        await fly.http.post(f"{url}/lease", json={"ttl": 10}),  # 409
        await fly.http.get(f"/v1/apps/{app}/machines/nope"),  # 404
        await fly.http.get(f"{url}/wait", params={"timeout": 99}),  # 400
    ]
    assert [e.status_code for e in errors] == [409, 404, 400]
    for error in errors:
        conforms("ErrorResponse", error.json())
        known_fields("ErrorResponse", error.json())


async def test_app_shapes(demo: Sim) -> None:
    listed = (await demo.http.get("/v1/apps", params={"org_slug": "demo"})).json()
    conforms("ListAppsResponse", listed)
    for app in listed["apps"]:
        known_fields("ListApp", app, frozenset({"volume_count"}))
    shown = (await demo.http.get("/v1/apps/ping-go-prod")).json()
    conforms("App", shown)
    for volume in (await demo.http.get("/v1/apps/ping-go-prod/volumes")).json():
        conforms("Volume", volume)
        known_fields("Volume", volume)
