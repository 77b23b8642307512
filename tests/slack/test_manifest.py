"""slack/manifest.yml asks for what the adapter uses: the /fly command (mentions escaped to
ids), one URL for commands, interactivity and events, the events it listens to, the scopes."""

from __future__ import annotations

import yaml

from tests.support import REPO


def test_the_manifest_matches_the_adapter() -> None:
    manifest = yaml.safe_load((REPO / "slack" / "manifest.yml").read_text())
    [fly] = manifest["features"]["slash_commands"]
    assert fly["command"] == "/fly" and fly["should_escape"] is True
    settings = manifest["settings"]
    urls = {
        fly["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert set(settings["event_subscriptions"]["bot_events"]) >= {
        "app_home_opened",
        "message.channels",
        "message.groups",
    }
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "users:read",
        "files:write",
    }
