"""Discord's settings: each malformed one is one line naming the variable and what it takes,
and unset ones mean Discord itself."""

from __future__ import annotations

import re

import pytest

from bot.settings import DEFAULT_DISCORD_API_URL, Settings, SettingsError


def test_unset_means_discord_itself() -> None:
    settings = Settings.from_env({"DISCORD_TOKEN": "t"})
    assert settings.discord_api_url == DEFAULT_DISCORD_API_URL
    assert settings.discord_gateway_url is None and settings.discord_guild_id is None
    assert "discord_token" not in repr(settings)  # the token is kept out of repr()


def test_the_test_urls_are_taken() -> None:
    settings = Settings.from_env(
        {
            "FLYBOT_DISCORD_API_URL": "http://127.0.0.1:9/api/v10/",
            "FLYBOT_DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
            "DISCORD_GUILD_ID": "1200000000000000001",
        }
    )
    assert settings.discord_api_url == "http://127.0.0.1:9/api/v10"
    assert settings.discord_gateway_url == "ws://127.0.0.1:9/gateway"
    assert settings.discord_guild_id == "1200000000000000001"


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("FLYBOT_DISCORD_API_URL", "discord.com/api", "is not an http(s) URL"),
        ("FLYBOT_DISCORD_GATEWAY_URL", "http://127.0.0.1/gw", "is not a ws(s) URL"),
        ("DISCORD_GUILD_ID", "my-server", "is not a server id"),
        ("FLYBOT_DISCORD_READY_TIMEOUT", "soon", "is not a number of seconds"),
    ],
)
def test_a_malformed_setting_is_one_line(name: str, value: str, said: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(said)) as raised:
        Settings.from_env({name: value})
    assert name in str(raised.value) and "\n" not in str(raised.value)
