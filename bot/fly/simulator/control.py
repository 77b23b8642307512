"""The test-control API under /__sim/: the call log, faults, DNS for certificates, seeding,
the clock, images and start durations. No token needed; not part of Fly."""

from __future__ import annotations

from aiohttp import web

from bot.fly.simulator.faults import Fault
from bot.fly.simulator.httputil import Handler, json_response, read_body, sim_of
from bot.fly.simulator.state import invalid


async def sim_calls(request: web.Request) -> web.Response:
    sim = sim_of(request)
    operation = request.query.get("operation")
    with sim.lock:
        calls = [c.to_json() for c in sim.calls if operation in (None, c.operation)]
    return json_response({"calls": calls})


async def sim_clear_calls(request: web.Request) -> web.Response:
    sim_of(request).clear_calls()
    return json_response({"ok": True})


async def sim_faults(request: web.Request) -> web.Response:
    sim = sim_of(request)
    with sim.lock:
        return json_response({"faults": [f.to_json() for f in sim.faults.faults]})


async def sim_add_fault(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    try:
        timeout = body.get("timeout")
        fault: Fault = sim.inject(
            str(body.get("operation") or "*"),
            status=body.get("status"),
            rate=float(body.get("rate", 1.0)),
            latency=float(body.get("latency", 0.0)),
            latency_ms=body.get("latency_ms"),
            timeout=timeout if isinstance(timeout, bool | int | float) else None,
            retry_after=body.get("retry_after"),
            count=body.get("count"),
            applied=float(body.get("applied", 0.0)),
            machine_id=body.get("machine_id"),
            echo=bool(body.get("echo", False)),
        )
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from None
    return json_response({"fault": fault.to_json()}, 201)


async def sim_clear_faults(request: web.Request) -> web.Response:
    sim_of(request).clear_faults(request.query.get("operation"))
    return json_response({"ok": True})


async def sim_dns(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    value = bool(body.get("set", True))
    app, hostname = request.match_info["app_name"], request.match_info["hostname"]
    sim.set_dns(app, hostname, value)
    return json_response({"ok": True, "hostname": hostname, "dns_set": value})


async def sim_cert_issued(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    try:
        days_ago = float(body.get("days_ago", 0))
    except (TypeError, ValueError):
        raise invalid("days_ago must be a number") from None
    app, hostname = request.match_info["app_name"], request.match_info["hostname"]
    sim.set_certificate_issued(app, hostname, days_ago)
    return json_response({"ok": True, "hostname": hostname, "days_ago": days_ago})


async def sim_seed(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    try:
        sim.load_seed(str(body.get("name") or "demo"))
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return json_response({"ok": True})


async def sim_clock(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    sim.advance(float(body.get("advance", 0)))
    return json_response({"now": sim.clock.now()})


async def sim_image(request: web.Request) -> web.Response:
    sim = sim_of(request)
    image = request.query.get("image", "")
    return json_response({"image": image, "exists": sim.image_exists(image)})


async def sim_prune_image(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    sim.prune_image(str(body.get("image") or ""))
    return json_response({"ok": True})


async def sim_push_image(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    digest = sim.push_image(str(body.get("image") or ""), body.get("like"))
    return json_response({"ok": True, "digest": digest})


async def sim_start_duration(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    try:
        sim.set_start_duration(
            float(body["seconds"]), machine_id=body.get("machine_id"), image=body.get("image")
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid(f"seconds and one of machine_id/image are required ({exc})") from None
    return json_response({"ok": True})


async def sim_logs(request: web.Request) -> web.Response:
    """Lines a machine's app prints now: `{"messages": [...]}`, or `{"count": N}` request
    lines like a busy web server's."""
    sim = sim_of(request)
    body = await read_body(request)
    messages = body.get("messages")
    if messages is None:
        try:
            count = int(body.get("count", 0))
        except (TypeError, ValueError):
            raise invalid("count must be a whole number") from None
        messages = [f"GET /orders/{i} 200 OK in {3 + i % 7}ms" for i in range(1, count + 1)]
    if not isinstance(messages, list):
        raise invalid("messages must be a list of strings")
    sim.emit_logs(
        request.match_info["app_name"],
        request.match_info["machine_id"],
        [str(m) for m in messages],
        str(body.get("level") or "info"),
    )
    return json_response({"ok": True, "lines": len(messages)})


async def sim_redis(request: web.Request) -> web.Response:
    sim = sim_of(request)
    body = await read_body(request)
    item = sim.add_redis(
        request.match_info["app_name"],
        str(body.get("name") or "redis"),
        region=str(body.get("region") or "iad"),
        plan=str(body.get("plan") or "Pay-as-you-go"),
        status=str(body.get("status") or "ready"),
    )
    return json_response({"ok": True, "add_on": item})


async def sim_prometheus(request: web.Request) -> web.Response:
    """`{"retention_days": 15}` and/or `{"app": "a", "egress_bps": {"nrt": 1000.0}, "since":
    <unix time>}`: how long metrics are kept, and an app's outbound bytes/s per region (the
    slope of its fly_edge_data_out counters, a daily rhythm around it) counted from `since`
    (default: when the app was created). The rates stand for the app's whole history."""
    sim = sim_of(request)
    body = await read_body(request)
    with sim.lock:
        try:
            if "retention_days" in body:
                days = float(body["retention_days"])
                if days <= 0:
                    raise ValueError("retention_days must be more than 0")
                sim.state.prom_retention_s = days * 86_400.0
            if "app" in body:
                app = sim.state.app(str(body["app"]))
                rates = body.get("egress_bps", {})
                if not isinstance(rates, dict):
                    raise ValueError("egress_bps must be an object of region: bytes/s")
                for bps in rates.values():
                    if float(bps) < 0:
                        raise ValueError("egress_bps values must be 0 or more")
                app.egress_bps.update({str(r): float(v) for r, v in rates.items()})
                if body.get("since") is not None:
                    app.egress_since = float(body["since"])
        except (TypeError, ValueError) as exc:
            raise invalid(str(exc)) from None
        return json_response(
            {
                "retention_days": sim.state.prom_retention_s / 86_400.0,
                "apps": {a.name: a.egress_bps for a in sim.state.apps.values()},
            }
        )


CONTROL_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/__sim/calls", sim_calls),
    ("DELETE", "/__sim/calls", sim_clear_calls),
    ("GET", "/__sim/faults", sim_faults),
    ("POST", "/__sim/faults", sim_add_fault),
    ("DELETE", "/__sim/faults", sim_clear_faults),
    ("POST", "/__sim/certificates/{app_name}/{hostname}/dns", sim_dns),
    ("POST", "/__sim/certificates/{app_name}/{hostname}/issued", sim_cert_issued),
    ("POST", "/__sim/seed", sim_seed),
    ("POST", "/__sim/clock", sim_clock),
    ("GET", "/__sim/images", sim_image),
    ("POST", "/__sim/images/prune", sim_prune_image),
    ("POST", "/__sim/images/push", sim_push_image),
    ("POST", "/__sim/start_duration", sim_start_duration),
    ("POST", "/__sim/logs/{app_name}/{machine_id}", sim_logs),
    ("POST", "/__sim/redis/{app_name}", sim_redis),
    ("POST", "/__sim/prometheus", sim_prometheus),
]
