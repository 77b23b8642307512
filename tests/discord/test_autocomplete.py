"""Autocomplete on Discord, answered within the interaction (callback type 8) from the
command layer's suggestions: projects, a project's stages, pending request ids (with what
each asks) and a stage's release versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.discord.harness import BOB, CAROL, discord_world
from tests.fakes.discord_api import CHANNEL, FakeDiscord
from tests.flyharness import NEW

pytestmark = pytest.mark.timeout(120)


async def offered(d: FakeDiscord, path: tuple[str, ...], focused: str, **options: Any) -> Any:
    asked = await d.autocomplete(CAROL, path, focused, options)
    await d.wait_for(lambda: asked.answers)
    [answer] = asked.answers
    assert answer["type"] == 8
    return [(c["name"], c["value"]) for c in answer["data"]["choices"]]


async def test_projects_stages_requests_and_versions_are_offered(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        d = w.discord
        assert await offered(d, ("status",), "project", project="sh") == [("shop", "shop")]
        assert await offered(d, ("status",), "project", project="zz") == []
        stages = await offered(d, ("deploy",), "stage", project="shop", stage="")
        assert [v for _, v in stages] == ["dev", "staging", "prod"]
        assert await offered(d, ("deploy",), "stage", project="shop", stage="st") == [
            ("staging", "staging")
        ]

        await d.slash(BOB, "deploy", project="shop", stage="prod", image=NEW)
        await d.wait_for(lambda: any(m.buttons for m in d.in_channel(CHANNEL)))
        requests = await offered(d, ("approve",), "id", id="")
        assert requests == [("#1 deploy shop/prod by bob", 1)]

        await d.slash(BOB, "deploy", project="shop", stage="dev", image=NEW)
        await d.wait_for(
            lambda: any("succeeded" in m.plain() for m in d.messages.values()), timeout=60
        )
        versions = await offered(
            d, ("rollback",), "version", project="shop", stage="dev", version=""
        )
        assert [v for _, v in versions] == [1]
        assert versions[0][0].startswith("v1 succeeded")
        assert await bot.stop() == 0
