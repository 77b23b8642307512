"""The HTTP traffic the simulator's apps serve, as Fly's proxy reports it to Prometheus:
`fly_app_http_responses_count` (a counter per app, region, instance and status) and the
`fly_app_http_response_time_seconds` histogram (`_bucket` by `le`, `_sum`, `_count`).

Every started machine with services serves at constant rates (`HEALTHY`, or `BROKEN` for a
`broken` image, whose app answers 500) from its creation, or from the app's
`traffic_since` when a test sets one with `FlySimulator.set_traffic`; a crash-looping
machine serves nothing. Response times follow `LATENCY` (cumulative share of requests per
bucket), so a quantile can be worked out by hand: p50 = 33.3 ms, p95 = 207.1 ms."""

from __future__ import annotations

import math
from collections.abc import Callable

from bot.fly.simulator.images import is_broken, is_crashloop, is_oom
from bot.fly.simulator.state import SimApp

ValueAt = Callable[[float], float | None]
Labels = dict[str, str]

HEALTHY = {"200": 4.0, "404": 0.5, "500": 0.1}  # requests per second per machine
BROKEN = {"200": 0.5, "404": 0.1, "500": 4.0}
LATENCY = (
    (0.005, 0.02),
    (0.01, 0.10),
    (0.025, 0.40),
    (0.05, 0.70),
    (0.1, 0.90),
    (0.25, 0.97),
    (0.5, 0.99),
    (1.0, 1.0),
    (2.5, 1.0),
    (5.0, 1.0),
    (10.0, 1.0),
    (math.inf, 1.0),
)
MEAN_S = 0.045  # seconds per request, for _sum


def _linear(rate: float, since: float) -> ValueAt:
    def at(t: float) -> float | None:
        return None if t < since else rate * (t - since)

    return at


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def rates_of(app: SimApp, machine_traits: str) -> dict[str, float]:
    if is_crashloop(machine_traits) or is_oom(machine_traits):
        return {}
    return dict(app.traffic_rates or (BROKEN if is_broken(machine_traits) else HEALTHY))


def http_series(app: SimApp) -> list[tuple[Labels, ValueAt]]:
    out: list[tuple[Labels, ValueAt]] = []
    for machine in app.machines.values():
        if machine.state != "started" or not machine.config.get("services"):
            continue
        rates = rates_of(app, machine.traits)
        if not rates:
            continue
        since = app.traffic_since if app.traffic_since is not None else machine.created_at
        base = {"app": app.name, "region": machine.region, "instance": machine.id}
        for status, rate in sorted(rates.items()):
            labels = {"__name__": "fly_app_http_responses_count", **base, "status": status}
            out.append((labels, _linear(rate, since)))
        total = sum(rates.values())
        name = "fly_app_http_response_time_seconds"
        for bound, share in LATENCY:
            labels = {"__name__": f"{name}_bucket", **base, "le": _le(bound)}
            out.append((labels, _linear(total * share, since)))
        out.append(({"__name__": f"{name}_count", **base}, _linear(total, since)))
        out.append(({"__name__": f"{name}_sum", **base}, _linear(total * MEAN_S, since)))
    return out
