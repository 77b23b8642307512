"""The process's Prometheus metrics (prometheus-client's default registry, which also carries
the process and GC collectors), served by `flybot run` at /metrics for Fly's Grafana.

Labels stay few: a verb, an outcome, a strategy, a platform, and a Fly operation written as
its path template (`GET /v1/apps/:app/machines/:id`), never an app name or machine id.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate

__all__ = ["CONTENT_TYPE", "fly_operation", "render"]

# The classic text format, which every Prometheus scraper (Fly's included) reads; the names
# here need none of the newer format's escaping.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

COMMANDS = Counter(
    "flybot_commands", "Commands handled, by verb and outcome.", ["verb", "outcome"]
)
DEPLOYS = Counter(
    "flybot_deploys", "Deploys finished, by strategy and outcome.", ["strategy", "outcome"]
)
DEPLOY_SECONDS = Histogram(
    "flybot_deploy_duration_seconds",
    "Wall time of a deploy, from its start to its outcome.",
    ["strategy"],
    buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
APPROVAL_WAIT = Histogram(
    "flybot_approval_wait_seconds",
    "Time from an approval request to its decision, by decision.",
    ["outcome"],
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
)
PENDING_APPROVALS = Gauge(
    "flybot_pending_approvals", "Approval requests waiting for a decision (in the database)."
)
FLY_CALLS = Counter(
    "flybot_fly_api_calls", "HTTP exchanges with Fly, by operation and status.",
    ["operation", "status"],
)
FLY_LATENCY = Histogram(
    "flybot_fly_api_latency_seconds",
    "Time of one HTTP exchange with Fly, by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CHAT_CALLS = Counter(
    "flybot_chat_api_calls", "Calls to a chat platform's API, by platform.", ["platform"]
)
CHAT_ERRORS = Counter(
    "flybot_chat_api_errors", "Chat API calls that failed, by platform.", ["platform"]
)

# Segments that name a thing rather than an operation follow one of these.
_NAMED_BY = {
    "apps": ":app",
    "machines": ":id",
    "metadata": ":key",
    "certificates": ":hostname",
    "releases": ":id",
    "volumes": ":id",
    "prometheus": ":org",
}
_LITERAL_AFTER = {"certificates": {"acme"}}


def fly_operation(method: str, path: str) -> str:
    """`GET /v1/apps/ping/machines/e28/lease` → `GET /v1/apps/:app/machines/:id/lease`."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["v2"] and "manifests" in parts[2:-1]:
        # The registry's: a repository may have several segments; a tag or digest is new
        # with every release, and a label per release would be a series per release.
        return f"{method.upper()} /v2/:repository/manifests/:reference"
    out: list[str] = []
    for index, part in enumerate(parts):
        before = parts[index - 1] if index else ""
        placeholder = _NAMED_BY.get(before)
        if placeholder and part not in _LITERAL_AFTER.get(before, set()) and out[-1] == before:
            out.append(placeholder)
        else:
            out.append(part)
    return f"{method.upper()} /{'/'.join(out)}"


def render() -> bytes:
    return _generate(REGISTRY)
