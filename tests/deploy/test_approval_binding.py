"""Issue 9 point 1: an approval is bound to everything that changes what runs — the pinned
image, the machine configs, and `[deploy]` (release_command, max_unavailable, wait_timeout,
strategy) — and the card shows what is bound. Editing any of it after the request voids it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.test_approvals import ask, people, request_row
from tests.deploy.test_engine import image_of, releases
from tests.flyharness import NEW, OLD, World, world

PEOPLE = ("shell:local:alice",)


def edit_prod(w: World, old: str, new: str) -> None:
    path = w.root / "shop" / "prod.fly.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[deploy]\n", '[deploy]\n  release_command = "/app/shop migrate --drop-all-tables"\n'),
        ("max_unavailable = 2", "max_unavailable = 6"),
        ('wait_timeout = "3s"', 'wait_timeout = "30m"'),
    ],
    ids=["release_command", "max_unavailable", "wait_timeout"],
)
async def test_an_edited_deploy_section_voids_the_approval(
    tmp_path: Path, old: str, new: str
) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        await ask(w, f"deploy shop prod {NEW}")
        edit_prod(w, old, new)
        _, conversation = await w.bot.run("approver0", "approve 1")
        await w.services.jobs.wait_all()
        assert request_row(w).state == "voided", conversation.all_text()
        assert releases(w) == []
        assert w.calls("Machines_create") == [] and w.calls("Machines_update") == []
        assert {image_of(m) for m in await w.machines("shop-prod")} == {OLD}


async def test_the_card_shows_what_the_approval_is_bound_to(tmp_path: Path) -> None:
    async with world(tmp_path, admins=PEOPLE) as w:
        people(w)
        edit_prod(w, "[deploy]\n", '[deploy]\n  release_command = "/app/shop migrate"\n')
        conversation = await ask(w, f"deploy shop prod {NEW}")
        text = conversation.all_text()
        digest = w.sim.image_digest(NEW)
        fingerprint = request_row(w).fingerprint
        assert "Release command: /app/shop migrate" in text
        assert "max_unavailable 2, wait_timeout 3s" in text
        bound = next(line for line in text.splitlines() if line.startswith("Approval binds:"))
        assert digest[:19] in bound and fingerprint[:12] in bound
        assert "[deploy]" in bound
