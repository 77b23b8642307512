"""`secrets deploy` typed on two bot instances at once, on one database: the app's one
release slot (a unique index in the database) lets one restart run; each machine gets the
new secrets version once. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.runtime import build_services
from tests.flyharness import FAST_ENGINE, fly_client
from tests.secrets.conftest import secrets_world
from tests.secrets.test_secrets import STAGING, VALUE, machines_of, updates_with
from tests.support import Bot


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_two_instances_hand_the_staged_secrets_out_once(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{database}_url")
    async with secrets_world(tmp_path, database_url=url) as w:
        outcome, conversation = await w.bot.run(
            "bob", "secrets set shop staging API_TOKEN --stage", secrets={"API_TOKEN": VALUE}
        )
        assert outcome.status == "ok", conversation.all_text()
        version = w.sim.state.apps[STAGING].secrets_version
        services = build_services(w.services.settings, FAST_ENGINE)
        client = fly_client(w.base_url)
        services.fly = client
        assert services.deployer is not None
        services.deployer.fly = client
        other = Bot(services)
        try:
            (first, a), (second, b) = await asyncio.gather(
                w.bot.run("bob", "secrets deploy shop staging"),
                other.run("bob", "secrets deploy shop staging"),
            )
            await asyncio.gather(w.services.jobs.wait_all(), services.jobs.wait_all())
        finally:
            await client.aclose()
        assert sorted((first.status, second.status)) == ["error", "ok"], (
            a.all_text(),
            b.all_text(),
        )
        refused = a if first.status == "error" else b
        assert "is being deployed" in refused.all_text() or "Nothing staged" in refused.all_text()
        assert updates_with(w, STAGING, version) == {m.id: 1 for m in machines_of(w)}
