"""The demo org `demo` (also what `personal` means once seeded): ping-go's dev and prod apps,
as `fly deploy` would have left them from examples/ping-go, and a small static site."""

from __future__ import annotations

import copy
from typing import Any

from bot.fly.simulator.state import Certificate, SimApp, SimState, Volume

DAY = 86_400.0
DEMO_ORG = "demo"
SECRET_VALUE = "demo-value"


def _ping_go_config(stage: str, group: str, image: str) -> dict[str, Any]:
    prod = stage == "prod"
    config: dict[str, Any] = {
        "image": image,
        "env": {
            "LOG_LEVEL": "info" if prod else "debug",
            "PING_TARGETS": "https://example.com,https://fly.io" if prod else "https://example.com",
            "PRIMARY_REGION": "nrt",
            "FLY_PROCESS_GROUP": group,
        },
        "init": {"cmd": ["/app/ping-go", "serve"]},
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "stop_config": {"signal": "SIGINT", "timeout": "5s"},
        "metadata": {"fly_platform_version": "v2", "fly_process_group": group},
    }
    if group == "cron":
        config["init"] = {"cmd": ["/app/ping-go", "cron", "--every", "1m" if prod else "5m"]}
        return config
    config["services"] = [
        {
            "protocol": "tcp",
            "internal_port": 8080,
            "ports": [
                {"port": 80, "handlers": ["http"], "force_https": True},
                {"port": 443, "handlers": ["tls", "http"]},
            ],
            "checks": [
                {
                    "type": "http",
                    "interval": "15s",
                    "timeout": "2s",
                    "grace_period": "10s" if prod else "5s",
                    "method": "GET",
                    "path": "/healthz",
                }
            ],
            "autostop": False if prod else "stop",
            "autostart": True,
            "min_machines_running": 2 if prod else 0,
        }
    ]
    return config


def _release(state: SimState, app: SimApp, image: str, age_days: float) -> str:
    release = state.create_release({"app_name": app.name, "image": image, "strategy": "rolling"})
    release.created_at = state.now() - age_days * DAY
    release.status = "complete"
    return release.id


def _machine(
    state: SimState,
    app: SimApp,
    region: str,
    config: dict[str, Any],
    release: tuple[str, int],
    age_days: float,
) -> None:
    config = copy.deepcopy(config)
    config["metadata"]["fly_release_id"] = release[0]
    config["metadata"]["fly_release_version"] = str(release[1])
    machine, _ = state.create_machine(app.name, {"config": config, "region": region})
    born = state.now() - age_days * DAY
    machine.created_at = machine.updated_at = born
    machine.events.clear()
    machine.event(state.ids, born, "launch", "created", "user")
    machine.event(state.ids, born + 4, "start", "started", "flyd")
    machine.state, machine.started_at = "started", born + 4
    machine.history = [(born, "created"), (born + 4, "started")]
    machine.schedule(None, None)
    machine.logs.clear()  # what it printed when it booted, and its last requests
    machine.boot_logs(born)
    machine.started_logs(born + 4)
    if config.get("services"):
        now = state.now()
        for i in range(12):
            machine.log(now - 60 + i * 5, f"GET /ping 200 OK in {2 + i % 4}ms")


def _secrets(state: SimState, app: SimApp, names: list[str]) -> None:
    state.set_secrets(app.name, dict.fromkeys(names, SECRET_VALUE))
    for secret in app.secrets.values():
        secret.created_at = secret.updated_at = state.now() - 20 * DAY


def seed_demo(state: SimState) -> None:
    if "ping-go-dev" in state.apps:
        return  # seeding twice is a no-op
    state.ensure_org(DEMO_ORG, "Demo Org")
    state.personal_org = DEMO_ORG
    month_ago = state.now() - 30 * DAY

    dev = state.create_app("ping-go-dev", DEMO_ORG, created_at=month_ago)
    _release(state, dev, "registry.fly.io/ping-go:v1", 10)
    dev_v2 = _release(state, dev, "registry.fly.io/ping-go:v2", 2)
    for group in ("web", "cron"):
        config = _ping_go_config("dev", group, "registry.fly.io/ping-go:v2")
        _machine(state, dev, "nrt", config, (dev_v2, 2), 2)
    _secrets(state, dev, ["DATABASE_URL", "PING_API_TOKEN"])
    dev.egress_bps = {"nrt": 600.0}

    prod = state.create_app("ping-go-prod", DEMO_ORG, created_at=month_ago)
    prod_v1 = _release(state, prod, "registry.fly.io/ping-go:v1", 9)
    for region, group in (("nrt", "web"), ("sin", "web"), ("nrt", "cron")):
        config = _ping_go_config("prod", group, "registry.fly.io/ping-go:v1")
        _machine(state, prod, region, config, (prod_v1, 1), 9)
    _secrets(state, prod, ["DATABASE_URL", "PING_API_TOKEN", "SENTRY_DSN"])
    # ~28 GB a month out of nrt and ~18 GB out of sin: inside the seed article's 160 GB, but
    # past the legacy 30 GB of Asia-Pacific by the 19th (the usage report's forecast says so)
    prod.egress_bps = {"nrt": 11_000.0, "sin": 7_000.0}
    prod.certificates["ping.example.com"] = Certificate(
        "ping.example.com",
        created_at=state.now() - 25 * DAY,
        dns_set=True,
        issued_at=state.now() - 25 * DAY,
        checked_at=state.now() - 25 * DAY,
    )
    prod.volumes.append(
        Volume(
            id="vol_" + state.ids.hex(16),
            name="ping_data",
            region="nrt",
            size_gb=1,
            created_at=month_ago,
            used_pct=12.5,
        )
    )

    static = state.create_app("hello-static", DEMO_ORG, created_at=month_ago)
    static_v1 = _release(state, static, "registry.fly.io/hello-static:v3", 15)
    config = {
        "image": "registry.fly.io/hello-static:v3",
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": 8080,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": True},
                    {"port": 443, "handlers": ["tls", "http"]},
                ],
                "autostop": "stop",
                "autostart": True,
                "min_machines_running": 0,
            }
        ],
        "metadata": {"fly_platform_version": "v2", "fly_process_group": "app"},
    }
    _machine(state, static, "ams", config, (static_v1, 1), 15)
    static.egress_bps = {"ams": 2_500.0}
