"""The OpenAPI document the contract tests check against.

Base: Fly's Machines OpenAPI spec of 2024 (../shared/fly-api/machines-openapi-2024.yaml), read
as is. On top of it, and nowhere else:

1. ALLOWANCES: narrow, commented corrections where the 2024 file is known to be out of date
   with what Fly documents and sends today (the 2026 spec / endpoint index).
2. NEWER ENDPOINTS: operations the 2024 file lacks (secrets, certificates, metadata PATCH,
   metadata upsert body, wait with its new states and JSON answer), written here from
   ../shared/fly-api/endpoint-index-2026.md.

`ADDED_OPERATIONS` lists what came from (2) so tests can report which source validated what.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI

FLY_API_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "fly-api"
SPEC_2024 = FLY_API_DIR / "machines-openapi-2024.yaml"
# The 2024 spec's server is https://api.machines.dev/v1: its paths carry no /v1.
SPEC_SERVER = "https://api.machines.dev"
SPEC_BASE_PATH = "/v1"


def require_spec() -> Path:
    if not SPEC_2024.is_file():
        pytest.skip(
            f"{FLY_API_DIR} (../shared/fly-api) not found: contract tests need the Machines "
            "OpenAPI spec"
        )
    return SPEC_2024


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


APP = _path_param("app_name")
MACHINE = _path_param("machine_id")
HOSTNAME = _path_param("hostname")
NONCE_HEADER = {"name": "fly-machine-lease-nonce", "in": "header", "schema": {"type": "string"}}


# --- 1. allowances ------------------------------------------------------------------------


def _apply_allowances(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]

    # The 2024 file came from a Swagger 2 conversion that writes `content: {}` for responses
    # without a body; openapi-core then demands a body of no media type at all. An empty
    # `content` means "no body schema", so it is dropped: status and headers still checked.
    for item in paths.values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                if response.get("content") == {}:
                    del response["content"]

    # Fly's error body is documented for every endpoint (README "Errors"; 2026 spec), while
    # the 2024 file declares it on a few operations only. 4XX/5XX get ErrorResponse, so error
    # answers are validated too; a 2xx status the operation does not declare still fails.
    for item in paths.values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status_range in ("4XX", "5XX"):
                responses.setdefault(
                    status_range,
                    {"description": "Fly error", "content": _json_content(_ref("ErrorResponse"))},
                )

    # 2026 spec: main.statusCode also has volume_placement_capacity and name_taken.
    schemas["main.statusCode"]["enum"] = [
        "unknown",
        "insufficient_capacity",
        "volume_placement_capacity",
        "name_taken",
    ]

    # 2026 spec (fly.MachineService.autostop): "off" | "stop" | "suspend", while responses
    # keep booleans for off/stop. The 2024 file says boolean only.
    schemas["api.MachineService"]["properties"]["autostop"] = {
        "oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["off", "stop", "suspend"]}]
    }

    # 2026 spec: Create Lease answers 201 (the 2024 file says 200) with the same Lease body,
    # and takes the fly-machine-lease-nonce header to refresh; Release Lease requires it.
    create_lease = paths["/apps/{app_name}/machines/{machine_id}/lease"]["post"]
    create_lease["responses"]["201"] = copy.deepcopy(create_lease["responses"]["200"])
    create_lease.setdefault("parameters", []).append(NONCE_HEADER)
    release_lease = paths["/apps/{app_name}/machines/{machine_id}/lease"]["delete"]
    release_lease.setdefault("parameters", []).append({**NONCE_HEADER, "required": True})

    # 2026 spec: Machines_list takes state, summary, include_leases, metadata.{key}, cursor and
    # limit, and pages with the fly-next-cursor header. (openapi-core ignores query names it
    # does not know, so the metadata.KEY filters pass unchecked either way.)
    list_machines = paths["/apps/{app_name}/machines"]["get"]
    list_machines["parameters"] += [
        _query_param("state", {"type": "string"}),
        _query_param("summary", {"type": "boolean"}),
        _query_param("include_leases", {"type": "boolean"}),
        _query_param("cursor", {"type": "string"}),
        _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    ]
    list_machines["responses"]["200"]["headers"] = {
        "fly-next-cursor": {"schema": {"type": "string"}}
    }

    # 2026 spec: Machines_delete takes ?force=true; Machines_restart takes ?signal=.
    machine = paths["/apps/{app_name}/machines/{machine_id}"]
    machine["delete"]["parameters"].append(_query_param("force", {"type": "boolean"}))
    paths["/apps/{app_name}/machines/{machine_id}/restart"]["post"]["parameters"].append(
        _query_param("signal", {"type": "string"})
    )
    # 2026 spec: List Events takes ?limit (max 50).
    paths["/apps/{app_name}/machines/{machine_id}/events"]["get"].setdefault(
        "parameters", []
    ).append(_query_param("limit", {"type": "integer", "minimum": 1, "maximum": 50}))

    # 2026 spec: CreateMachineRequest / UpdateMachineRequest gained min_secrets_version
    # (what a secrets update returns as `version`), skip_secrets.
    for name in ("CreateMachineRequest", "UpdateMachineRequest"):
        props = schemas[name]["properties"]
        props["min_secrets_version"] = {"type": "integer"}
        props["skip_secrets"] = {"type": "boolean"}


# --- 2. endpoints the 2024 file lacks (from endpoint-index-2026.md) ---------------------------

NEW_SCHEMAS: dict[str, Any] = {
    "AppSecret": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "digest": {"type": "string"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            # Only with show_secrets=true, which flybot never asks for.
            "value": {"type": "string", "nullable": True},
        },
    },
    "AppSecrets": {
        "type": "object",
        "required": ["secrets"],
        "properties": {"secrets": {"type": "array", "items": _ref("AppSecret")}},
    },
    "AppSecretsUpdateRequest": {
        "type": "object",
        "required": ["values"],
        "additionalProperties": False,
        "properties": {
            # A null value unsets the secret.
            "values": {
                "type": "object",
                "additionalProperties": {"type": "string", "nullable": True},
            }
        },
    },
    "AppSecretsUpdateResp": {
        "type": "object",
        "required": ["secrets", "version"],
        "properties": {
            "secrets": {"type": "array", "items": _ref("AppSecret")},
            "version": {"type": "integer"},
        },
    },
    "createAcmeCertificateRequest": {
        "type": "object",
        "required": ["hostname"],
        "additionalProperties": False,
        "properties": {"hostname": {"type": "string", "minLength": 1}},
    },
    "CertificateDetail": {
        "type": "object",
        "required": ["hostname", "status"],
        "properties": {
            "hostname": {"type": "string"},
            "configured": {"type": "boolean"},
            "acme_requested": {"type": "boolean"},
            "status": {"type": "string"},
            "dns_provider": {"type": "string", "nullable": True},
            "rate_limited_until": {"type": "string", "nullable": True},
            "certificates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "source": {"type": "string", "enum": ["custom", "fly"]},
                        "status": {
                            "type": "string",
                            "enum": ["active", "pending_ownership", "pending_validation"],
                        },
                        "created_at": {"type": "string", "nullable": True},
                        "expires_at": {"type": "string", "nullable": True},
                        "issuer": {"type": "string", "nullable": True},
                        "issued": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "validation": {
                "type": "object",
                "properties": {
                    "dns_configured": {"type": "boolean"},
                    "alpn_configured": {"type": "boolean"},
                    "http_configured": {"type": "boolean"},
                    "ownership_txt_configured": {"type": "boolean"},
                },
            },
            "dns_requirements": {
                "type": "object",
                "properties": {
                    "a": {"type": "array", "items": {"type": "string"}},
                    "aaaa": {"type": "array", "items": {"type": "string"}},
                    "cname": {"type": "string"},
                    "acme_challenge": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "target": {"type": "string"}},
                    },
                    "ownership": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "app_value": {"type": "string"},
                            "org_value": {"type": "string"},
                        },
                    },
                },
            },
            "validation_errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "remediation": {"type": "string"},
                        "timestamp": {"type": "string"},
                    },
                },
            },
        },
    },
    "CertificateCheckResponse": {
        "allOf": [
            _ref("CertificateDetail"),
            {"type": "object", "properties": {"dns_records": {"type": "object"}}},
        ]
    },
    "listCertificatesResponse": {
        "type": "object",
        "required": ["certificates"],
        "properties": {
            # The 2026 index names only the detail's fields; a list item is checked as a
            # summary: hostname and status at least.
            "certificates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["hostname"],
                    "properties": {
                        "hostname": {"type": "string"},
                        "status": {"type": "string"},
                        "configured": {"type": "boolean"},
                    },
                },
            },
            "next_cursor": {"type": "string", "nullable": True},
            "total_count": {"type": "integer"},
        },
    },
    "updateMetadataRequest": {
        "type": "object",
        "properties": {
            "machine_version": {"type": "string"},
            # The 2026 schema says string values, its text says "null values and empty strings
            # remove keys": null is allowed here for that reason.
            "metadata": {
                "type": "object",
                "additionalProperties": {"type": "string", "nullable": True},
            },
            "updated_at": {"type": "string"},
        },
    },
    "upsertMetadataKeyRequest": {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "string"}, "updated_at": {"type": "string"}},
    },
    "WaitMachineResponse": {
        "type": "object",
        "required": ["ok"],
        "properties": {
            "ok": {"type": "boolean"},
            "state": {"type": "string"},
            "version": {"type": "string"},
            "event_id": {"type": "string"},
        },
    },
}

_ERROR = {"description": "Fly error", "content": _json_content(_ref("ErrorResponse"))}
_NO_BODY = {"description": "No body"}


def _op(
    op_id: str,
    params: list[dict[str, Any]],
    responses: dict[str, Any],
    body: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "parameters": params,
        "responses": {**responses, "4XX": _ERROR, "5XX": _ERROR},
    }
    if body:
        operation["requestBody"] = {"required": True, "content": _json_content(_ref(body))}
    return operation


def _ok(schema: str) -> dict[str, Any]:
    return {"description": "OK", "content": _json_content(_ref(schema))}


WAIT_STATES = ["started", "stopped", "suspended", "destroyed", "failed", "settled"]

# (path, method) -> operation. Wait and metadata upsert replace the 2024 definitions.
NEW_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/apps/{app_name}/secrets", "get"): _op(
        "Secrets_list",
        [
            APP,
            _query_param("min_version", {"type": "string"}),
            _query_param("show_secrets", {"type": "boolean"}),
        ],
        {"200": _ok("AppSecrets")},
    ),
    ("/apps/{app_name}/secrets", "post"): _op(
        "Secrets_update", [APP], {"200": _ok("AppSecretsUpdateResp")}, "AppSecretsUpdateRequest"
    ),
    ("/apps/{app_name}/certificates", "get"): _op(
        "App_Certificates_list",
        [
            APP,
            _query_param("filter", {"type": "string"}),
            _query_param("cursor", {"type": "string"}),
            _query_param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        ],
        {"200": _ok("listCertificatesResponse")},
    ),
    ("/apps/{app_name}/certificates/acme", "post"): _op(
        "App_Certificates_acme_create",
        [APP],
        {"201": _ok("CertificateDetail")},
        "createAcmeCertificateRequest",
    ),
    ("/apps/{app_name}/certificates/{hostname}", "get"): _op(
        "App_Certificates_show", [APP, HOSTNAME], {"200": _ok("CertificateDetail")}
    ),
    ("/apps/{app_name}/certificates/{hostname}", "delete"): _op(
        "App_Certificates_delete", [APP, HOSTNAME], {"204": _NO_BODY}
    ),
    ("/apps/{app_name}/certificates/{hostname}/check", "post"): _op(
        "App_Certificates_check", [APP, HOSTNAME], {"200": _ok("CertificateCheckResponse")}
    ),
    ("/apps/{app_name}/machines/{machine_id}/metadata", "patch"): _op(
        "Machines_update_metadata", [APP, MACHINE], {"204": _NO_BODY}, "updateMetadataRequest"
    ),
    ("/apps/{app_name}/machines/{machine_id}/metadata/{key}", "post"): _op(
        "Machines_upsert_metadata",
        [APP, MACHINE, _path_param("key")],
        {"204": _NO_BODY},
        "upsertMetadataKeyRequest",
    ),
    ("/apps/{app_name}/machines/{machine_id}/wait", "get"): _op(
        "Machines_wait",
        [
            APP,
            MACHINE,
            _query_param("version", {"type": "string"}),
            _query_param("instance_id", {"type": "string"}),
            _query_param("from_event_id", {"type": "string"}),
            # "1 to 60 per call" (README); the spec says "max block 60s".
            _query_param("timeout", {"type": "integer", "minimum": 1, "maximum": 60}),
            # Repeated or comma-separated: a comma list is checked by pattern.
            _query_param(
                "state",
                {
                    "type": "string",
                    "pattern": f"^({'|'.join(WAIT_STATES)})(,({'|'.join(WAIT_STATES)}))*$",
                },
            ),
        ],
        {"200": _ok("WaitMachineResponse")},
    ),
}

ADDED_OPERATIONS = frozenset(op["operationId"] for op in NEW_OPERATIONS.values())


def build_spec_dict() -> dict[str, Any]:
    spec = yaml.safe_load(require_spec().read_text())
    _apply_allowances(spec)
    spec["components"]["schemas"].update(copy.deepcopy(NEW_SCHEMAS))
    for (path, method), operation in NEW_OPERATIONS.items():
        spec["paths"].setdefault(path, {})[method] = copy.deepcopy(operation)
    return spec


@cache
def contract_spec() -> OpenAPI:
    return OpenAPI.from_dict(build_spec_dict())


@cache
def operation_ids() -> dict[tuple[str, str], str]:
    """(path template, method) -> operationId, for every operation in the checked document."""
    spec = build_spec_dict()
    return {
        (path, method): op["operationId"]
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
