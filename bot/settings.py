"""Settings from the environment, plus an optional flybot.toml (projects, stages, policies)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///flybot.db"
DEFAULT_FLAPS_BASE_URL = "https://api.machines.dev"
DEFAULT_API_BASE_URL = "https://api.fly.io"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"
DEFAULT_HTTP_HOST = "0.0.0.0"  # as a Fly [http_service] expects
DEFAULT_HTTP_PORT = 8080
# Below fly.toml's kill_timeout (30 s), with time left to release leases and say so.
DEFAULT_SHUTDOWN_TIMEOUT = 20.0


class SettingsError(Exception):
    """A setting is missing or malformed. The text names the setting and what is expected."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    config_path: Path | None = None
    fly_org: str = "personal"
    fly_flaps_base_url: str = DEFAULT_FLAPS_BASE_URL
    fly_api_base_url: str = DEFAULT_API_BASE_URL
    admins: tuple[str, ...] = ()
    slack_api_url: str = DEFAULT_SLACK_API_URL  # Web API base (ends in /), for a gateway or a test
    discord_api_url: str = DEFAULT_DISCORD_API_URL  # REST base, for a test's fake
    discord_gateway_url: str | None = None  # None: Discord's own gateway
    discord_guild_id: str | None = None  # where /fly is put (instant); None: globally
    discord_ready_timeout: float = 2.0  # seconds discord.py waits for more guilds at start
    http_host: str = DEFAULT_HTTP_HOST  # `flybot run`'s server
    http_port: int = DEFAULT_HTTP_PORT
    # Seconds between a claimed periodic job (prune, certificate jobs) asking whether its run
    # is due; None keeps each job's own pace. For tests and the benchmarks: asking often is
    # cheap, as each run stays claimed once per period across instances.
    scheduler_ask_every: float | None = None
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT  # seconds running work gets on SIGTERM
    fly_machine_id: str | None = None  # FLY_MACHINE_ID: set when running on a Fly machine
    # Tokens are kept out of repr() so a logged Settings never shows them.
    fly_api_token: str | None = field(default=None, repr=False)
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    discord_token: str | None = field(default=None, repr=False)

    def secret_values(self) -> tuple[str, ...]:
        """Every token and secret this process was given, for the log redactor: each whole,
        and a Fly token's comma-separated parts, with and without its `FlyV1 ` prefix."""
        values = [
            self.fly_api_token,
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.discord_token,
        ]
        if self.fly_api_token:
            bare = self.fly_api_token.removeprefix("FlyV1 ").strip()
            values += [bare, *(part.strip() for part in bare.split(","))]
        return tuple(v for v in values if v)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        config = env.get("FLYBOT_CONFIG")
        config_path = Path(config) if config else None
        if config_path is None and Path("flybot.toml").is_file():
            config_path = Path("flybot.toml")
        if config_path is not None and not config_path.is_file():
            raise SettingsError(f"FLYBOT_CONFIG points at {config_path}, which is not a file.")
        admins = tuple(a.strip() for a in env.get("FLYBOT_ADMINS", "").split(",") if a.strip())
        for admin in admins:
            if len(admin.split(":")) != 3:
                raise SettingsError(
                    f"FLYBOT_ADMINS entry '{admin}' is not platform:workspace:user "
                    "(e.g. slack:T0123:U0456, discord:1234:5678, shell:local:alice)."
                )
        slack_api_url = env.get("FLYBOT_SLACK_API_URL") or DEFAULT_SLACK_API_URL
        if not slack_api_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"FLYBOT_SLACK_API_URL '{slack_api_url}' is not an http(s) URL "
                "(e.g. https://slack.com/api/)."
            )
        discord_api_url = (env.get("FLYBOT_DISCORD_API_URL") or DEFAULT_DISCORD_API_URL).rstrip("/")
        if not discord_api_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"FLYBOT_DISCORD_API_URL '{discord_api_url}' is not an http(s) URL "
                "(e.g. https://discord.com/api/v10)."
            )
        gateway = env.get("FLYBOT_DISCORD_GATEWAY_URL") or None
        if gateway is not None and not gateway.startswith(("ws://", "wss://")):
            raise SettingsError(
                f"FLYBOT_DISCORD_GATEWAY_URL '{gateway}' is not a ws(s) URL "
                "(e.g. wss://gateway.discord.gg/)."
            )
        guild = env.get("DISCORD_GUILD_ID") or None
        if guild is not None and not guild.isdigit():
            raise SettingsError(
                f"DISCORD_GUILD_ID '{guild}' is not a server id (digits: right-click the "
                "server → Copy Server ID, with Developer Mode on)."
            )
        ready_text = env.get("FLYBOT_DISCORD_READY_TIMEOUT") or "2"
        try:
            ready_timeout = float(ready_text)
        except ValueError:
            raise SettingsError(
                f"FLYBOT_DISCORD_READY_TIMEOUT '{ready_text}' is not a number of seconds."
            ) from None
        port_text = env.get("FLYBOT_HTTP_PORT") or str(DEFAULT_HTTP_PORT)
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise SettingsError(f"FLYBOT_HTTP_PORT '{port_text}' is not a port (0-65535).")
        ask_text = env.get("FLYBOT_SCHEDULER_ASK_EVERY") or ""
        scheduler_ask_every: float | None = None
        if ask_text:
            try:
                scheduler_ask_every = float(ask_text)
            except ValueError:
                scheduler_ask_every = -1.0
            if not 0.05 <= scheduler_ask_every <= 86400:
                raise SettingsError(
                    f"FLYBOT_SCHEDULER_ASK_EVERY '{ask_text}' is not a number of seconds "
                    "between 0.05 and 86400."
                )
        shutdown_text = env.get("FLYBOT_SHUTDOWN_TIMEOUT") or str(DEFAULT_SHUTDOWN_TIMEOUT)
        try:
            shutdown_timeout = float(shutdown_text)
        except ValueError:
            shutdown_timeout = -1.0
        if not 0 <= shutdown_timeout <= 3600:
            raise SettingsError(
                f"FLYBOT_SHUTDOWN_TIMEOUT '{shutdown_text}' is not a number of seconds (0-3600)."
            )
        return cls(
            database_url=env.get("FLYBOT_DATABASE_URL") or DEFAULT_DATABASE_URL,
            shutdown_timeout=shutdown_timeout,
            fly_machine_id=env.get("FLY_MACHINE_ID") or None,
            config_path=config_path,
            fly_org=env.get("FLY_ORG") or "personal",
            fly_flaps_base_url=(env.get("FLY_FLAPS_BASE_URL") or DEFAULT_FLAPS_BASE_URL).rstrip(
                "/"
            ),
            fly_api_base_url=(env.get("FLY_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/"),
            admins=admins,
            slack_api_url=slack_api_url.rstrip("/") + "/",
            discord_api_url=discord_api_url,
            discord_gateway_url=gateway,
            discord_guild_id=guild,
            discord_ready_timeout=ready_timeout,
            http_host=env.get("FLYBOT_HTTP_HOST") or DEFAULT_HTTP_HOST,
            http_port=int(port_text),
            scheduler_ask_every=scheduler_ask_every,
            fly_api_token=env.get("FLY_API_TOKEN") or None,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            discord_token=env.get("DISCORD_TOKEN") or None,
        )
