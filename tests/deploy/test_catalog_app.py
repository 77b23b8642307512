"""Issue 8 point 4 (the deploy-time half): the app a stage deploys to is the catalog's, so
editing a fly.toml's `app` cannot steer a deploy past the grants, locks and approvals of
the stage that app really belongs to."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.test_engine import deploy, releases, writes
from tests.flyharness import NEW, OLD, world


async def test_a_fly_toml_naming_another_app_is_refused_before_anything_is_touched(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, admins=("shell:local:alice",)) as w:
        await w.bot.run("alice", "perms grant @bob deployer shop dev")
        dev = w.root / "shop" / "fly.toml"
        dev.write_text(dev.read_text().replace('app = "shop-dev"', 'app = "shop-prod"'))
        w.sim.calls.clear()
        outcome, conversation = await deploy(w, f"deploy shop dev {NEW}", user="bob")
        assert outcome.status == "error"
        text = conversation.all_text()
        assert "shop-prod" in text and "shop-dev" in text and "fly.toml" in text, text
        assert writes(w) == []
        assert releases(w) == []
        assert {m.config.image for m in await w.machines("shop-prod") if m.config} == {OLD}
