"""Self-approval across accounts: an approval from any identity linked to the requester is
refused, and an admin cannot grant an approver-or-higher role to an identity linked to
themselves. "Linked" is what flybot can know: one principal, or a link both sides proved
(`/fly link` claimed), confirmed or not."""

from __future__ import annotations

import re
from pathlib import Path

from bot.store.principals import IdentityKey, add_grant, ensure_identity
from tests.deploy.test_approvals import release_count, request_row
from tests.flyharness import NEW, World, world
from tests.support import Bot, write_projects

SLACK = {"platform": "slack", "workspace": "T0001"}
DISCORD = {"platform": "discord", "workspace": "9001"}


def grant(engine: object, key: str, role: str, project: str = "*") -> None:
    identity = ensure_identity(engine, IdentityKey.parse(key), key.rsplit(":", 1)[-1])  # type: ignore[arg-type]
    add_grant(engine, identity.principal_id, role, project, "*", None)  # type: ignore[arg-type]


async def claim_link(
    bot: Bot, start: tuple[str, dict[str, str]], other: tuple[str, dict[str, str]]
) -> str:
    _, started = await bot.run(start[0], "link", **start[1])
    match = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", started.private[0].text)
    assert match
    claimed, conversation = await bot.run(other[0], f"link {match.group(0)}", **other[1])
    assert claimed.status == "ok", conversation.all_text()
    return match.group(0)


async def test_an_approval_from_the_requesters_claimed_other_account_is_refused(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        grant(w.services.engine, "slack:T0001:U777", "deployer", "shop")
        grant(w.services.engine, "discord:9001:4242", "approver", "shop")  # the same person
        asked, _ = await w.bot.run("U777", f"deploy shop prod {NEW}", **SLACK)
        assert asked.status == "awaiting"
        await claim_link(w.bot, ("U777", SLACK), ("4242", DISCORD))  # both sides proved
        outcome, conversation = await w.bot.run("4242", "approve 1", **DISCORD)
        assert outcome.status == "denied", conversation.all_text()
        assert "linked to the requester" in conversation.all_text()
        assert request_row(w).state == "pending" and release_count(w) == 0


async def test_an_approval_by_the_requesters_identity_under_another_principal_is_refused(
    tmp_path: Path,
) -> None:
    """Even if the request's principal was re-pointed or absorbed, the identity it records
    (platform, workspace, user) counts as the requester."""
    async with world(tmp_path) as w:
        people(w)
        asked, _ = await w.bot.run("U777", f"deploy shop prod {NEW}", **SLACK)
        assert asked.status == "awaiting"
        from sqlalchemy import update

        from bot.store.engine import session_scope
        from bot.store.models import ApprovalRequest

        with session_scope(w.services.engine) as session:  # as after a merge moved things
            session.execute(update(ApprovalRequest).values(requested_by=1))
        outcome, conversation = await w.bot.run("U777", "approve 1", **SLACK)
        assert outcome.status == "denied", conversation.all_text()
        assert release_count(w) == 0


def people(w: World) -> None:
    grant(w.services.engine, "slack:T0001:U777", "approver", "shop")


async def test_an_admin_cannot_make_their_own_other_account_an_approver(tmp_path: Path) -> None:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("slack:T0001:UA",)
    )
    await claim_link(bot, ("UA", SLACK), ("D1", DISCORD))
    for role in ("approver", "admin"):
        refused, conversation = await bot.run(
            "UA", f"perms grant discord:9001:D1 {role} ping-go", **SLACK
        )
        assert refused.status == "denied", conversation.all_text()
        assert "linked to you" in conversation.all_text()
    allowed, _ = await bot.run("UA", "perms grant discord:9001:D1 deployer ping-go", **SLACK)
    assert allowed.status == "ok"
    other, _ = await bot.run("UA", "perms grant discord:9001:D2 approver ping-go", **SLACK)
    assert other.status == "ok"
