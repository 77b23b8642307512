"""`flybot sandbox`: the shell against the built-in Fly simulator, seeded with a demo org,
the ping-go project (dev + prod) and three people, so every command can be tried with no
accounts at all."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bot.deploy.engine import EngineTiming
from bot.settings import Settings
from bot.store.principals import IdentityKey, add_grant, ensure_identity

SANDBOX_DNS_AFTER = 20.0  # seconds from `certs add` until the simulated DNS records exist
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_ORG = "demo"
DEMO_PEOPLE = (  # (user, role, project, stage)
    ("alice", "admin", "*", "*"),
    ("bob", "deployer", "ping-go", "*"),
    ("carol", "approver", "ping-go", "*"),
)
BANNER = (
    "flybot sandbox: a simulated Fly org '{org}' with ping-go (dev, prod). People: alice "
    "(admin), bob (deployer), carol (approver); `as bob` switches. Try `status ping-go prod`, "
    "`deploy ping-go dev registry.fly.io/ping-go:v3`, `help`."
)


def seed_people(settings: Settings) -> None:
    from bot.store import make_engine, upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    for user, role, project, stage in DEMO_PEOPLE:
        identity = ensure_identity(engine, IdentityKey("shell", "local", user), user)
        add_grant(engine, identity.principal_id, role, project, stage, granted_by=None)
    engine.dispose()


def run_sandbox(user: str) -> int:
    from adapters.shell.session import run_shell
    from bot.fly.simulator import FlySimulator, SimulatorTiming, serve_in_thread
    from bot.runtime import Runtime

    config = EXAMPLES / "flybot.toml"
    if not config.is_file():
        print(f"flybot sandbox: the demo project is missing ({config}); run it from a checkout.")
        return 2
    # A sped-up world: fly.toml's check grace periods and intervals pass ten times faster
    # for the simulator and the engine alike; a certificate's DNS records "appear" a little
    # while after `certs add`, so `certs check` shows it pending, then issued.
    simulator = FlySimulator(
        seed=0,
        timing=SimulatorTiming(check_time_scale=0.1, cert_dns_after_s=SANDBOX_DNS_AFTER),
    )
    simulator.seed_demo()
    server = serve_in_thread(simulator, port=0)
    with tempfile.TemporaryDirectory(prefix="flybot-sandbox-") as scratch:
        # Always a fresh file of its own: the demo's grants (alice is admin of everything)
        # must never reach a team's database, whatever FLYBOT_DATABASE_URL says.
        settings = Settings(
            database_url=f"sqlite:///{scratch}/sandbox.db",
            config_path=config,
            fly_org=DEMO_ORG,
            fly_flaps_base_url=server.base_url,
            fly_api_base_url=server.base_url,
            fly_api_token="sandbox-token",
        )
        seed_people(settings)
        timing = EngineTiming(
            lease_refresh=2.0, check_poll=0.2, check_pace=0.1, proxy_settle=1.0, drain=1.0
        )
        runtime = Runtime.from_settings(settings, timing)
        try:
            asyncio.run(run_shell(runtime, user, banner=BANNER.format(org=DEMO_ORG)))
        finally:
            server.stop()
    return 0
