"""Which chat adapters `flybot run` can serve with the settings it was given, decided before
anything is built (no database file, no port): with none, it says what it found and what is
missing, and exits 2."""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings


@dataclass(frozen=True)
class AdapterMode:
    name: str  # as a person reads it: "Slack, HTTP mode"
    variables: tuple[str, ...]  # all of them must be set


# Only the modes `flybot run` serves. A partly set Slack (a bot token without its signing
# secret or app token) is the Slack adapter's to refuse, with one line naming what is missing.
MODES = (
    AdapterMode("Slack, HTTP mode", ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")),
    AdapterMode("Slack, Socket Mode", ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")),
    AdapterMode("Discord", ("DISCORD_TOKEN",)),
)


def _present(settings: Settings) -> set[str]:
    values = {
        "SLACK_BOT_TOKEN": settings.slack_bot_token,
        "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
        "SLACK_APP_TOKEN": settings.slack_app_token,
        "DISCORD_TOKEN": settings.discord_token,
    }
    return {name for name, value in values.items() if value}


def anything_configured(settings: Settings) -> bool:
    """True when some adapter `run` serves has at least one of its variables set."""
    present = _present(settings)
    return any(set(mode.variables) & present for mode in MODES)


def nothing_to_run(settings: Settings) -> str:
    """The message for a `flybot run` with no adapter configured: each mode and what it
    lacks (names only: a value is never shown)."""
    present = _present(settings)
    lines = ["nothing to run: no chat adapter is configured."]
    for mode in MODES:
        missing = [v for v in mode.variables if v not in present]
        lines.append(f"  {mode.name}: missing {', '.join(missing)}")
    if not settings.fly_api_token:
        lines.append("  Fly: missing FLY_API_TOKEN (needed by every command that calls Fly)")
    lines.append("Set the variables of one mode (see the README's Configuration section).")
    return "\n".join(lines)
