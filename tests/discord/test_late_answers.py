"""An interaction's token lives 15 minutes: an answer later than that never uses it. The
adapter runs in this process (a real discord.py client against the fake Discord) with the
token's life set to nothing, so every answer is late: a public one is a bot channel message,
a private one a direct message; the interaction's webhook is never called after the defer.
And a bad token or an unreachable Discord stop the start with one line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from discord.http import Route

from adapters.discord import conversation
from adapters.discord.app import DiscordAdapter, DiscordSetupError
from bot.runtime import Runtime
from bot.settings import Settings
from tests.discord.harness import BOB
from tests.fakes.discord_api import BOT_TOKEN, CHANNEL, GUILD, FakeDiscord, running_fake_discord
from tests.support import write_projects

pytestmark = pytest.mark.timeout(60)


def fake_bot() -> str:
    from tests.fakes.discord_api import BOT_USER

    return BOT_USER


def settings(tmp_path: Path, fake: FakeDiscord, token: str = BOT_TOKEN) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'db'}",
        config_path=write_projects(tmp_path),
        discord_token=token,
        discord_api_url=fake.api_url,
        discord_gateway_url=fake.gateway_url,
        discord_guild_id=GUILD,
        discord_ready_timeout=0.1,
        admins=(f"discord:{GUILD}:{BOB}",),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    before = Route.BASE
    async with running_fake_discord() as running:
        yield running
    Route.BASE = before


async def test_late_answers_go_through_the_bots_own_messages(
    tmp_path: Path, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversation, "TOKEN_LIFE", timedelta(0))
    runtime = Runtime.from_settings(settings(tmp_path, fake))
    adapter = DiscordAdapter(runtime, runtime.services.settings)
    await adapter.connect()
    try:
        public = await fake.slash(BOB, "lock", project="ping-go", stage="dev")
        await fake.wait_for(lambda: [m for m in fake.in_channel(CHANNEL) if not m.loading])
        private = await fake.slash(BOB, "whoami")
        await fake.wait_for(lambda: fake.in_channel(f"dm-{BOB}"))
        await runtime.services.jobs.wait_all()
    finally:
        await adapter.close()
        await runtime.stop()
    assert public.answers == [{"type": 5}] and private.answers == [{"type": 5}]
    assert not [c for c in fake.calls if c.path.startswith("/webhooks/")]
    [locked] = [m for m in fake.in_channel(CHANNEL) if not m.loading]
    assert "ping-go/dev" in locked.plain() and locked.author == fake_bot()
    [dm] = fake.in_channel(f"dm-{BOB}")
    assert f"discord:{GUILD}:{BOB}" in dm.plain()
    assert fake.calls_to("POST", "/users/@me/channels")[0].body == {"recipient_id": BOB}


async def test_a_refused_token_is_one_line(tmp_path: Path, fake: FakeDiscord) -> None:
    runtime = Runtime.from_settings(settings(tmp_path, fake, token="not-the-token"))
    adapter = DiscordAdapter(runtime, runtime.services.settings)
    with pytest.raises(DiscordSetupError, match="Discord refused DISCORD_TOKEN"):
        await adapter.connect()
    assert not fake.sessions and "discord" not in runtime.services.router.platforms
    await runtime.stop()


async def test_an_unreachable_discord_is_one_line(tmp_path: Path, fake: FakeDiscord) -> None:
    broken = Settings(
        **{**settings(tmp_path, fake).__dict__, "discord_api_url": "http://127.0.0.1:9/api/v10"}
    )
    runtime = Runtime.from_settings(broken)
    adapter = DiscordAdapter(runtime, broken)
    with pytest.raises(DiscordSetupError, match="did not answer"):
        await asyncio.wait_for(adapter.connect(), 30)
    await runtime.stop()
