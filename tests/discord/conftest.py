"""Fixtures shared by the Discord tests that drive the outbox directly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord.http import Route

from adapters.discord.conversation import ClientLoop, DiscordOutbox
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord, running_fake_discord


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeDiscord, DiscordOutbox]]:
    async with running_fake_discord() as fake:
        before = Route.BASE
        Route.BASE = fake.api_url
        client = discord.Client(intents=discord.Intents(guilds=True))
        try:
            await client.login(BOT_TOKEN)
            yield fake, DiscordOutbox(client, ClientLoop())
        finally:
            await client.close()
            Route.BASE = before
