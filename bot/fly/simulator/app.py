"""The simulator's HTTP face: Fly's paths and JSON on one aiohttp application, plus the
test-control API under /__sim/. Every call goes through `_middleware`: request id, token,
injected faults, Fly-shaped errors, and the call log."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from bot.fly.simulator import graphql, prometheus
from bot.fly.simulator.control import CONTROL_ROUTES
from bot.fly.simulator.faults import CallRecord, redact_secrets
from bot.fly.simulator.httputil import (
    SIM_KEY,
    Handler,
    error_response,
    flag,
    json_response,
    read_body,
    sim_of,
)
from bot.fly.simulator.sim import FlySimulator, strip_scheme
from bot.fly.simulator.state import SimError, invalid

NONCE = "fly-machine-lease-nonce"
REQUEST_ID = "fly-request-id"
FAULT_MESSAGES = {
    408: "request timeout",
    429: "rate limit exceeded, please slow down",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable, try again later",
    504: "upstream request timeout",
}

OPS_KEY = web.AppKey("ops", dict)


def _authorized(sim: FlySimulator, header: str | None) -> bool:
    if not header:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme not in ("Bearer", "FlyV1", "Basic") or not token.strip():
        return False
    return sim.token is None or scheme == "Basic" or strip_scheme(header) == sim.token


# --- middleware ---------------------------------------------------------------------------


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = sim_of(request)
    request_id = sim.next_request_id()
    if request.path.startswith("/__sim/"):
        response = await _answer(request, handler)
        response.headers[REQUEST_ID] = request_id
        return response
    started, timestamp = time.monotonic(), sim.clock.now()
    operation = request.app[OPS_KEY].get(request.match_info.route, "unknown")
    fault: str | None = None
    try:
        if not _authorized(sim, request.headers.get("Authorization")):
            raise SimError(401, "You must be authenticated to view this.")
        with sim.lock:
            decision = sim.faults.decide(operation, request.match_info.get("machine_id"))
        fault = decision.label
        await sim.sleep(decision.latency)
        if decision.applied:
            await _answer(request, handler)  # done; the answer below is all the client sees
        if decision.hang is not None:
            await sim.sleep(decision.hang)
            raise SimError(504, FAULT_MESSAGES[504])
        if decision.status is not None:
            headers = {}
            if decision.retry_after is not None:
                headers["Retry-After"] = str(decision.retry_after)
            message = FAULT_MESSAGES.get(decision.status, "injected failure")
            if decision.echo:
                raw = (await request.read()).decode("utf-8", "replace")
                message = f"{message}: could not process request {raw[:1000]}"
            raise SimError(decision.status, message, headers=headers)
        response = await _answer(request, handler)
    except SimError as exc:
        response = error_response(exc.status, exc.message, exc.code)
        response.headers.update(exc.headers)
    response.headers[REQUEST_ID] = request_id
    await _record(request, operation, response.status, timestamp, started, request_id, fault)
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SimError as exc:
        response = error_response(exc.status, exc.message, exc.code)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, f"not found: {request.method} {request.path}")
        return error_response(exc.status, exc.reason)


async def _record(
    request: web.Request,
    operation: str,
    status: int,
    timestamp: float,
    started: float,
    request_id: str,
    fault: str | None,
) -> None:
    raw = await request.read()
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")[:2000]
    if "/secrets" in request.path:
        body = redact_secrets(body)
    record = CallRecord(
        method=request.method,
        path=request.path,
        operation=operation,
        query={k: ",".join(request.query.getall(k)) for k in request.query},
        status=status,
        timestamp=timestamp,
        duration=time.monotonic() - started,
        request_id=request_id,
        fault=fault,
        body=body,
        machine_id=request.match_info.get("machine_id"),
    )
    sim = sim_of(request)
    with sim.lock:
        sim.calls.append(record)


# --- apps ---------------------------------------------------------------------------------


async def apps_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    org = request.query.get("org_slug")
    if not org:
        raise invalid("org_slug is required")
    with sim.lock:
        apps = sim.state.apps_of(org)
        items = []
        for app in apps:
            full = sim.state.app_json(app)
            items.append({k: full[k] for k in ("id", "name", "machine_count", "volume_count")})
    return json_response({"apps": items, "total_apps": len(items)})


async def apps_create(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    name = body.get("app_name") or body.get("name")
    org = body.get("org_slug") or "personal"
    with sim.lock:
        app = sim.state.create_app(str(name or ""), str(org))
    return json_response({"id": app.id, "created_at": int(app.created_at * 1000)}, 201)


async def apps_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        app = sim.state.app(request.match_info["app_name"])
        return json_response(sim.state.app_json(app))


async def apps_delete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.delete_app(request.match_info["app_name"])
    return web.Response(status=202)


async def volumes_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        app = sim.state.app(request.match_info["app_name"])
        return json_response([v.to_json() for v in app.volumes])


async def ips_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        return json_response({"ips": sim.state.list_ips(request.match_info["app_name"])})


async def ips_create(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        return json_response(sim.state.assign_ip(request.match_info["app_name"], body))


async def ips_delete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.delete_ip(request.match_info["app_name"], request.match_info["ip"])
    return web.Response(status=204)


async def volumes_create(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        volume = sim.state.create_volume(request.match_info["app_name"], body)
        return json_response(volume.to_json())


# --- machines -----------------------------------------------------------------------------


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["app_name"], request.match_info["machine_id"]


async def machines_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    q = request.query
    limit = None
    if "limit" in q:
        try:
            limit = int(q["limit"])
        except ValueError:
            raise invalid("limit must be an integer") from None
        if not 1 <= limit <= 1000:
            raise invalid("limit must be between 1 and 1000")
    states = {s for v in q.getall("state", []) for s in v.split(",") if s} or None
    metadata = {k[len("metadata.") :]: v for k, v in q.items() if k.startswith("metadata.")}
    with sim.lock:
        found, cursor = sim.state.list_machines(
            request.match_info["app_name"],
            region=q.get("region") or None,
            states=states,
            metadata=metadata or None,
            include_deleted=flag(request, "include_deleted"),
            limit=limit,
            cursor=q.get("cursor") or None,
        )
        items = [sim.state.machine_json(m) for m in found]
    response = json_response(items)
    if cursor:
        response.headers["fly-next-cursor"] = cursor
    return response


async def machines_create(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        machine, nonce = sim.state.create_machine(request.match_info["app_name"], body)
        out = sim.state.machine_json(machine)
    if nonce:
        out["nonce"] = nonce
    return json_response(out)


async def machines_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        machine = sim.state.machine(*_ids(request))
        out = sim.state.machine_json(machine)
        if flag(request, "include_leases"):
            lease = machine.active_lease(sim.clock.now())
            out["lease"] = lease.to_json() if lease else None
    return json_response(out)


async def machines_update(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        machine = sim.state.update_machine(*_ids(request), body, request.headers.get(NONCE))
        return json_response(sim.state.machine_json(machine))


async def machines_delete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    force = flag(request, "force") or flag(request, "kill")
    with sim.lock:
        sim.state.delete_machine(*_ids(request), request.headers.get(NONCE), force=force)
    return json_response({"ok": True})


async def machines_start(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        return json_response(sim.state.start_machine(*_ids(request), request.headers.get(NONCE)))


async def machines_stop(request: web.Request) -> web.Response:
    sim = sim_of(request)
    await read_body(request)  # {signal, timeout}: accepted, not simulated
    with sim.lock:
        sim.state.stop_machine(*_ids(request), request.headers.get(NONCE))
    return json_response({"ok": True})


async def machines_suspend(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.stop_machine(*_ids(request), request.headers.get(NONCE), suspend=True)
    return json_response({"ok": True})


async def machines_restart(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.restart_machine(*_ids(request), request.headers.get(NONCE))
    return json_response({"ok": True})


async def machines_cordon(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.cordon(*_ids(request), request.headers.get(NONCE), True)
    return json_response({"ok": True})


async def machines_uncordon(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.cordon(*_ids(request), request.headers.get(NONCE), False)
    return json_response({"ok": True})


async def machines_wait(request: web.Request) -> web.Response:
    sim = sim_of(request)
    states = sim.state.parse_wait_states(request.query.getall("state", []))
    raw = request.query.get("timeout", "60").removesuffix("s")
    try:
        timeout = int(raw)
    except ValueError:
        raise invalid("timeout must be a whole number of seconds") from None
    if not 1 <= timeout <= 60:
        raise invalid("timeout must be between 1 and 60 seconds")
    version = request.query.get("version") or request.query.get("instance_id") or None
    deadline = time.monotonic() + timeout
    while True:
        with sim.lock:
            machine = sim.state.machine(*_ids(request))
            reached = sim.state.wait_reached(machine, states, version)
            if reached is not None:
                last = machine.events[-1]["id"] if machine.events else ""
                return json_response(
                    {"ok": True, "state": reached, "version": machine.version, "event_id": last}
                )
            current = machine.state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SimError(
                408,
                f"deadline_exceeded: machine {machine.id} did not reach "
                f"{','.join(sorted(states))} within {timeout}s (it is {current})",
            )
        if sim.closing:
            raise SimError(503, "the server is shutting down")
        await sim.sleep(min(sim.timing.wait_poll_s, remaining))


async def machines_events(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise invalid("limit must be an integer") from None
    with sim.lock:
        machine = sim.state.machine(*_ids(request))
        return json_response(machine.recent_events(max(1, min(limit, 50))))


# --- leases -------------------------------------------------------------------------------


async def lease_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        lease = sim.state.get_lease(*_ids(request))
        return json_response({"status": "success", "data": lease.to_json()})


async def lease_create(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        lease, created = sim.state.acquire_lease(*_ids(request), body, request.headers.get(NONCE))
        return json_response(
            {"status": "success", "data": lease.to_json()}, 201 if created else 200
        )


async def lease_release(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.release_lease(*_ids(request), request.headers.get(NONCE))
    return json_response({"ok": True})


# --- metadata -----------------------------------------------------------------------------


async def metadata_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        return json_response(dict(sim.state.metadata(*_ids(request))))


async def metadata_patch(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        sim.state.patch_metadata(*_ids(request), body)
    return web.Response(status=204)


async def metadata_key_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    key = request.match_info["key"]
    with sim.lock:
        meta = sim.state.metadata(*_ids(request))
        if key not in meta:
            raise SimError(404, f"metadata key {key} not found")
        return json_response({"value": meta[key]})


async def metadata_key_set(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    value = body.get("value")
    if not isinstance(value, str):
        raise invalid("value must be a string")
    with sim.lock:
        sim.state.metadata(*_ids(request))[request.match_info["key"]] = value
    return web.Response(status=204)


async def metadata_key_delete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.metadata(*_ids(request)).pop(request.match_info["key"], None)
    return web.Response(status=204)


# --- secrets ------------------------------------------------------------------------------


def _refuse_values(request: web.Request) -> None:
    if flag(request, "show_secrets"):
        raise SimError(403, "show_secrets is not available: the simulator never returns values")


async def secrets_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    _refuse_values(request)
    with sim.lock:
        app = sim.state.app(request.match_info["app_name"])
        items = [s.to_json() for s in sorted(app.secrets.values(), key=lambda s: s.name)]
    return json_response({"secrets": items})


async def secrets_update(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    app_name = request.match_info["app_name"]
    with sim.lock:
        version = sim.state.set_secrets(app_name, body.get("values"))
        app = sim.state.app(app_name)
        items = [s.to_json() for s in sorted(app.secrets.values(), key=lambda s: s.name)]
    return json_response({"secrets": items, "version": version})


async def secret_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    _refuse_values(request)
    with sim.lock:
        secret = sim.state.secret(request.match_info["app_name"], request.match_info["name"])
        return json_response(secret.to_json())


async def secret_set(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    app_name, name = request.match_info["app_name"], request.match_info["name"]
    value = body.get("value")
    if not isinstance(value, str):
        raise invalid("value must be a string")
    with sim.lock:
        version = sim.state.set_secrets(app_name, {name: value})
        out = sim.state.secret(app_name, name).to_json()
    return json_response({**out, "version": version}, 201)


async def secret_delete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    app_name, name = request.match_info["app_name"], request.match_info["name"]
    with sim.lock:
        sim.state.secret(app_name, name)
        version = sim.state.set_secrets(app_name, {name: None})
    return json_response({"version": version})


# --- certificates -------------------------------------------------------------------------


async def certs_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        limit = int(request.query.get("limit", "25"))
    except ValueError:
        raise invalid("limit must be an integer") from None
    limit = max(1, min(limit, 500))
    cursor = request.query.get("cursor") or ""
    with sim.lock:
        app = sim.state.app(request.match_info["app_name"])
        certs = sorted(app.certificates.values(), key=lambda c: c.hostname)
        after = [c for c in certs if c.hostname > cursor] if cursor else certs
        page = after[:limit]
        items = []
        for cert in page:
            full = sim.state.certificate_json(app, cert)
            items.append(
                {
                    k: full[k]
                    for k in (
                        "hostname",
                        "status",
                        "configured",
                        "acme_requested",
                        "created_at",
                        "dns_provider",
                    )
                }
            )
    next_cursor = page[-1].hostname if len(after) > limit else None
    return json_response(
        {"certificates": items, "next_cursor": next_cursor, "total_count": len(certs)}
    )


async def certs_acme(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        app_name = request.match_info["app_name"]
        cert = sim.state.add_certificate(app_name, body.get("hostname"))
        return json_response(sim.state.certificate_json(sim.state.app(app_name), cert), 201)


async def certs_show(request: web.Request) -> web.Response:
    sim = sim_of(request)
    app_name = request.match_info["app_name"]
    with sim.lock:
        cert = sim.state.certificate(app_name, request.match_info["hostname"])
        return json_response(sim.state.certificate_json(sim.state.app(app_name), cert))


async def certs_check(request: web.Request) -> web.Response:
    sim = sim_of(request)
    app_name = request.match_info["app_name"]
    with sim.lock:
        cert = sim.state.check_certificate(app_name, request.match_info["hostname"])
        return json_response(sim.state.certificate_json(sim.state.app(app_name), cert, check=True))


async def certs_delete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        sim.state.delete_certificate(request.match_info["app_name"], request.match_info["hostname"])
    return web.Response(status=204)


# --- api.fly.io: releases, GraphQL, Prometheus --------------------------------------------


async def releases_create(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        release = sim.state.create_release(body)
        return json_response({"release": release.to_json()}, 201)


async def releases_update(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        release = sim.state.update_release(request.match_info["release_id"], body)
        return json_response({"release": release.to_json()})


async def releases_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise invalid("limit must be an integer") from None
    with sim.lock:
        app = sim.state.app(request.match_info["app_name"])
        items = sorted(app.releases, key=lambda r: r.version, reverse=True)[: max(1, limit)]
        return json_response({"releases": [r.to_json() for r in items]})


async def logs_list(request: web.Request) -> web.Response:
    sim = sim_of(request)
    q = request.query
    with sim.lock:
        data, token = sim.state.app_logs(
            request.match_info["app_name"],
            next_token=q.get("next_token", ""),
            instance=q.get("instance", ""),
            region=q.get("region", ""),
        )
    return json_response({"data": data, "meta": {"next_token": token}})


async def graphql_query(request: web.Request) -> web.Response:
    sim = sim_of(request)
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    with sim.lock:
        return json_response(graphql.execute(sim.state, body))


async def _prom_params(request: web.Request) -> dict[str, str]:
    params = dict(request.query)
    if request.method == "POST":
        params.update({k: str(v) for k, v in (await request.post()).items()})
    return params


def _promerror_response(message: str, status: int = 400, kind: str = "bad_data") -> web.Response:
    return json_response({"status": "error", "errorType": kind, "error": message}, status)


async def prom_query(request: web.Request) -> web.Response:
    sim = sim_of(request)
    params = await _prom_params(request)
    if not params.get("query"):
        return _promerror_response("missing query")
    try:
        with sim.lock:
            series = prometheus.collect_series(sim.state, request.match_info["org"])
            at = prometheus.parse_time(params.get("time"), sim.clock.now())
            data = prometheus.instant_query(params["query"], series, at)
    except prometheus.PromError as exc:
        return _promerror_response(str(exc))
    except SimError as exc:
        return _promerror_response(exc.message, exc.status, "not_found")
    return json_response({"status": "success", "data": data})


async def prom_query_range(request: web.Request) -> web.Response:
    sim = sim_of(request)
    params = await _prom_params(request)
    if not params.get("query"):
        return _promerror_response("missing query")
    try:
        with sim.lock:
            series = prometheus.collect_series(sim.state, request.match_info["org"])
            now = sim.clock.now()
            start = prometheus.parse_time(params.get("start"), now - 3600)
            end = prometheus.parse_time(params.get("end"), now)
            step = prometheus.parse_step(params.get("step"))
            data = prometheus.range_query(params["query"], series, start, end, step)
    except prometheus.PromError as exc:
        return _promerror_response(str(exc))
    except SimError as exc:
        return _promerror_response(exc.message, exc.status, "not_found")
    return json_response({"status": "success", "data": data})


# --- a fake image registry ----------------------------------------------------------------


async def registry_base(request: web.Request) -> web.Response:
    return json_response({})


async def registry_manifest(request: web.Request) -> web.Response:
    sim = sim_of(request)
    repo, ref = request.match_info["repo"], request.match_info["ref"]
    image = (
        f"registry.fly.io/{repo}@{ref}"
        if ref.startswith("sha256:")
        else (f"registry.fly.io/{repo}:{ref}")
    )
    digest = sim.image_digest(image)
    if digest is None:
        body = {
            "errors": [
                {
                    "code": "MANIFEST_UNKNOWN",
                    "message": "manifest unknown",
                    "detail": {"Name": repo, "Revision": ref},
                }
            ]
        }
        return json_response(body, 404) if request.method == "GET" else web.Response(status=404)
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
    }
    if request.method == "HEAD":
        return web.Response(status=200, headers=headers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469,
            "digest": "sha256:" + digest[7:][::-1],
        },
        "layers": [],
    }
    return web.Response(text=json.dumps(manifest), headers=headers)


# --- the route table ----------------------------------------------------------------------

A = "/v1/apps/{app_name}"
M = A + "/machines/{machine_id}"
ROUTES: list[tuple[str, str, str, Handler]] = [
    ("GET", "/v1/apps", "Apps_list", apps_list),
    ("POST", "/v1/apps", "Apps_create", apps_create),
    ("GET", A, "Apps_show", apps_show),
    ("DELETE", A, "Apps_delete", apps_delete),
    ("GET", A + "/volumes", "Volumes_list", volumes_list),
    ("GET", A + "/ip_assignments", "App_IPAssignments_list", ips_list),
    ("POST", A + "/ip_assignments", "App_IPAssignments_create", ips_create),
    ("DELETE", A + "/ip_assignments/{ip}", "App_IPAssignments_delete", ips_delete),
    ("POST", A + "/volumes", "Volumes_create", volumes_create),
    ("GET", A + "/machines", "Machines_list", machines_list),
    ("POST", A + "/machines", "Machines_create", machines_create),
    ("GET", M, "Machines_show", machines_show),
    ("POST", M, "Machines_update", machines_update),
    ("DELETE", M, "Machines_delete", machines_delete),
    ("POST", M + "/start", "Machines_start", machines_start),
    ("POST", M + "/stop", "Machines_stop", machines_stop),
    ("POST", M + "/suspend", "Machines_suspend", machines_suspend),
    ("POST", M + "/restart", "Machines_restart", machines_restart),
    ("POST", M + "/cordon", "Machines_cordon", machines_cordon),
    ("POST", M + "/uncordon", "Machines_uncordon", machines_uncordon),
    ("GET", M + "/wait", "Machines_wait", machines_wait),
    ("GET", M + "/events", "Machines_list_events", machines_events),
    ("GET", M + "/lease", "Machines_show_lease", lease_show),
    ("POST", M + "/lease", "Machines_create_lease", lease_create),
    ("DELETE", M + "/lease", "Machines_release_lease", lease_release),
    ("GET", M + "/metadata", "Machines_show_metadata", metadata_show),
    ("PATCH", M + "/metadata", "Machines_update_metadata", metadata_patch),
    ("GET", M + "/metadata/{key}", "Machines_show_metadata_key", metadata_key_show),
    ("POST", M + "/metadata/{key}", "Machines_upsert_metadata", metadata_key_set),
    ("DELETE", M + "/metadata/{key}", "Machines_delete_metadata", metadata_key_delete),
    ("GET", A + "/secrets", "Secrets_list", secrets_list),
    ("POST", A + "/secrets", "Secrets_update", secrets_update),
    ("GET", A + "/secrets/{name}", "Secrets_show", secret_show),
    ("POST", A + "/secrets/{name}", "Secrets_set_one", secret_set),
    ("DELETE", A + "/secrets/{name}", "Secrets_delete", secret_delete),
    ("GET", A + "/certificates", "App_Certificates_list", certs_list),
    ("POST", A + "/certificates/acme", "App_Certificates_acme_create", certs_acme),
    ("GET", A + "/certificates/{hostname}", "App_Certificates_show", certs_show),
    ("POST", A + "/certificates/{hostname}/check", "App_Certificates_check", certs_check),
    ("DELETE", A + "/certificates/{hostname}", "App_Certificates_delete", certs_delete),
    ("POST", "/api/v1/releases", "Releases_create", releases_create),
    ("PATCH", "/api/v1/releases/{release_id}", "Releases_update", releases_update),
    ("GET", "/api/v1/apps/{app_name}/releases", "Releases_list", releases_list),
    ("GET", "/api/v1/apps/{app_name}/logs", "Logs_list", logs_list),
    ("POST", "/graphql", "GraphQL", graphql_query),
    ("GET", "/prometheus/{org}/api/v1/query", "Prometheus_query", prom_query),
    ("POST", "/prometheus/{org}/api/v1/query", "Prometheus_query", prom_query),
    ("GET", "/prometheus/{org}/api/v1/query_range", "Prometheus_query_range", prom_query_range),
    ("POST", "/prometheus/{org}/api/v1/query_range", "Prometheus_query_range", prom_query_range),
    ("GET", "/v2/", "Registry_base", registry_base),
    ("GET", "/v2/{repo:.+}/manifests/{ref}", "Registry_manifest", registry_manifest),
    ("HEAD", "/v2/{repo:.+}/manifests/{ref}", "Registry_manifest", registry_manifest),
]


OPERATIONS = frozenset(op for _, _, op, _ in ROUTES)


def build_app(sim: FlySimulator) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=8 * 1024 * 1024)
    app[SIM_KEY] = sim
    ops: dict[AbstractRoute, str] = {}
    for method, path, operation, handler in ROUTES:
        ops[app.router.add_route(method, path, handler)] = operation
    for method, path, handler in CONTROL_ROUTES:
        app.router.add_route(method, path, handler)
    app[OPS_KEY] = ops
    return app
