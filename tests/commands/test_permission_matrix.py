"""Role x verb x scope: each verb is refused just below its role and allowed at it, on matching
scopes; refused on scopes that do not cover it; every refusal is audited with who, what, why."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import AuditEntry
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands import build_registry
from commands.roles import ANY, Role
from tests.support import Bot, write_projects

# (command line, the command's name, the scope the line acts on)
VERBS: list[tuple[str, str, tuple[str, str]]] = [
    ("audit ping-go", "audit", ("ping-go", ANY)),
    ("audit", "audit", (ANY, ANY)),
    ("perms grant @zed viewer ping-go prod", "perms grant", ("ping-go", "prod")),
    ("perms revoke @zed viewer ping-go prod", "perms revoke", ("ping-go", "prod")),
    ("perms list ping-go", "perms list", ("ping-go", ANY)),
    ("perms list", "perms list", (ANY, ANY)),
    ("lock ping-go prod", "lock", ("ping-go", "prod")),
    ("unlock ping-go prod", "unlock", ("ping-go", "prod")),
    ("status ping-go prod", "status", ("ping-go", "prod")),
    ("apps", "apps", (ANY, ANY)),
    ("deploy ping-go prod", "deploy", ("ping-go", "prod")),
    ("rollback ping-go prod", "rollback", ("ping-go", "prod")),
    ("releases ping-go prod", "releases", ("ping-go", "prod")),
    ("pending ping-go", "pending", ("ping-go", ANY)),
    ("certs add ping-go prod www.example.com", "certs add", ("ping-go", "prod")),
    ("certs list ping-go prod", "certs list", ("ping-go", "prod")),
    ("certs show ping-go prod www.example.com", "certs show", ("ping-go", "prod")),
    ("certs check ping-go prod", "certs check", ("ping-go", "prod")),
    ("certs remove ping-go prod www.example.com", "certs remove", ("ping-go", "prod")),
]


def scopes_for(scope: tuple[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Grant scopes that cover `scope`, and ones that do not."""
    project, stage = scope
    if project == ANY:
        return [(ANY, ANY)], [("ping-go", ANY), ("ping-go", "prod")]
    if stage == ANY:
        return [(project, ANY), (ANY, ANY)], [(project, "prod"), ("hello", ANY)]
    return [(project, stage), (project, ANY), (ANY, ANY)], [(project, "dev"), ("hello", ANY)]


def test_every_guarded_verb_is_in_the_matrix() -> None:
    with_role = {c.name for c in build_registry().commands.values() if c.role is not None}
    assert with_role == {name for _, name, _ in VERBS}


_users = (f"user{n}" for n in itertools.count())


def grant(bot: Bot, role: Role, project: str, stage: str) -> str:
    user = next(_users)
    identity = ensure_identity(bot.engine, IdentityKey("shell", "local", user), user)
    add_grant(bot.engine, identity.principal_id, role.name, project, stage, granted_by=None)
    return user


def denial_entries(bot: Bot, user: str) -> list[AuditEntry]:
    with session_scope(bot.engine) as session:
        return list(
            session.exec(
                select(AuditEntry).where(AuditEntry.user_id == user, AuditEntry.outcome == "denied")
            )
        )


@pytest.mark.parametrize(("line", "name", "scope"), VERBS, ids=[v[0] for v in VERBS])
async def test_role_by_scope(tmp_path: Path, line: str, name: str, scope: tuple[str, str]) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db.sqlite'}", write_projects(tmp_path))
    command = next(c for c in build_registry().commands.values() if c.name == name)
    assert command.role is not None
    needed = command.role
    matching, other = scopes_for(scope)

    async def expect_denied(user: str, why: str) -> None:
        outcome, conversation = await bot.run(user, line)
        assert outcome.status == "denied", (user, line, why)
        assert f"needs {needed.name} on {scope[0]}/{scope[1]}" in conversation.private[0].text
        [entry] = denial_entries(bot, user)
        assert entry.action == name
        assert entry.display_name == user and entry.platform == "shell"
        assert f"needs {needed.name} on {scope[0]}/{scope[1]}" in entry.reason

    async def expect_allowed(user: str) -> None:
        if name == "unlock":  # unlock something this user holds, to see it really work
            taken, _ = await bot.run(user, "lock ping-go prod")
            assert taken.status == "ok"
        outcome, conversation = await bot.run(user, line)
        assert outcome.status != "denied", (user, line, conversation.all_text())
        assert denial_entries(bot, user) == []

    # No role at all is refused everywhere.
    await expect_denied(next(_users), "no grant")
    for project, stage in matching:
        if needed > Role.viewer:
            below = Role(needed - 1)
            await expect_denied(grant(bot, below, project, stage), f"{below.name} is below")
        await expect_allowed(grant(bot, needed, project, stage))
        if name == "lock":
            await bot.run(grant(bot, Role.admin, ANY, ANY), "unlock ping-go prod")
    for project, stage in other:
        await expect_denied(
            grant(bot, Role.admin, project, stage), f"{project}/{stage} does not cover"
        )
