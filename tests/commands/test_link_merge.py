"""`/fly link` for people who have already done things: every row that points at the absorbed
principal (locks, grants given and held, requests, votes, releases, audit entries, identities)
points at the kept one afterwards, in one transaction with the code's state change — on
SQLite and PostgreSQL. A merge that fails changes nothing and leaves the code usable."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bot.store.engine import session_scope
from bot.store.models import (
    ApprovalRequest,
    ApprovalVote,
    AuditEntry,
    Grant,
    Identity,
    LinkRequest,
    Principal,
    Release,
)
from bot.store.principals import IdentityKey, ensure_identity
from tests.flyharness import NEW, World, world
from tests.support import snapshot

SLACK = {"platform": "slack", "workspace": "T1"}
DISCORD = {"platform": "discord", "workspace": "G1"}
ADMIN = ("shell:local:alice",)


def code_in(said: str) -> str:
    match = re.search(r"[A-Z2-9]{4}-[A-Z2-9]{4}", said)
    assert match, said
    return match.group(0)


def principal_of(engine: Engine, platform: str, workspace: str, user: str) -> int:
    return ensure_identity(engine, IdentityKey(platform, workspace, user)).principal_id


def references_to(engine: Engine, principal_id: int) -> dict[str, int]:
    """How many rows of each column that names a principal point at `principal_id`."""
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for column in table.columns:
                names_principal = any(
                    fk.column.table.name == "principal" for fk in column.foreign_keys
                ) or (table.name == "audit_entry" and column.name == "principal_id")
                if not names_principal:
                    continue
                count = connection.execute(
                    text(f'SELECT COUNT(*) FROM "{table.name}" WHERE "{column.name}" = :p'),
                    {"p": principal_id},
                ).scalar_one()
                if count:
                    found[f"{table.name}.{column.name}"] = count
    return found


async def busy_discord_self(w: World) -> tuple[int, int]:
    """ann on Slack (U1) and on Discord (D1) have each done things before linking.
    Returns (Slack principal, Discord principal)."""
    bot = w.bot
    await bot.run("alice", "perms grant slack:T1:U1 approver shop")
    await bot.run("alice", "perms grant discord:G1:D1 admin shop")
    await bot.run("alice", "perms grant discord:G1:D1 approver shop")  # held by both: dup
    for person in ("bob", "carol"):
        await bot.run("alice", f"perms grant shell:local:{person} deployer shop")
    # D1: a grant given, a lock held, a release, a request; votes by both on bob's request.
    outcome, said = await bot.run("D1", "perms grant shell:local:erin viewer shop", **DISCORD)
    assert outcome.status == "ok", said.all_text()
    outcome, said = await bot.run("D1", 'lock shop staging "db work"', **DISCORD)
    assert outcome.status == "ok", said.all_text()
    outcome, said = await bot.run("D1", f"deploy shop dev {NEW}", **DISCORD)
    assert outcome.status == "ok", said.all_text()
    await w.services.jobs.wait_all()
    outcome, said = await bot.run("D1", f"deploy shop prod {NEW}", **DISCORD)  # request #1
    assert outcome.status == "awaiting", said.all_text()
    outcome, said = await bot.run("bob", f"deploy shop prod {NEW}")  # request #2
    assert outcome.status == "awaiting", said.all_text()
    for user, where in (("U1", SLACK), ("D1", DISCORD)):
        outcome, said = await bot.run(user, "approve 2", **where)
        assert outcome.status == "ok", said.all_text()
    outcome, said = await bot.run("U1", "approve 1", **SLACK)  # before linking: allowed
    assert outcome.status == "ok", said.all_text()
    slack, discord = (
        principal_of(w.services.engine, "slack", "T1", "U1"),
        principal_of(w.services.engine, "discord", "G1", "D1"),
    )
    assert slack != discord
    return slack, discord


async def link(w: World) -> tuple[str, str]:
    """Start on Slack, claim on Discord; return (code, the confirm command's outcome+text)."""
    _, started = await w.bot.run("U1", "link", **SLACK)
    code = code_in(started.all_text())
    outcome, claimed = await w.bot.run("D1", f"link {code}", **DISCORD)
    assert outcome.status == "ok", claimed.all_text()
    return code, f"link confirm {code}"


async def test_linking_someone_who_has_done_everything_repoints_every_reference(
    tmp_path: Path, database_url: str
) -> None:
    async with world(tmp_path, approvals=3, admins=ADMIN, database_url=database_url) as w:
        engine = w.services.engine
        slack, discord = await busy_discord_self(w)
        assert set(references_to(engine, discord)) >= {
            "identity.principal_id",
            "grant.principal_id",
            "grant.granted_by",
            "stage_lock.owner_id",
            "release.requested_by",
            "approval_request.requested_by",
            "approval_vote.principal_id",
            "audit_entry.principal_id",
        }
        code, confirm = await link(w)
        outcome, confirmed = await w.bot.run("U1", confirm, **SLACK)
        assert outcome.status == "ok", confirmed.all_text()
        assert "are now one person" in confirmed.all_text()

        assert references_to(engine, discord) == {}
        with session_scope(engine) as session:
            assert session.get(Principal, discord) is None
            assert session.get(LinkRequest, code).state == "done"  # type: ignore[union-attr]
            identities = session.exec(
                select(Identity).where(Identity.user_id.in_(["U1", "D1"]))  # type: ignore[attr-defined]
            ).all()
            assert {i.principal_id for i in identities} == {slack}
            roles = sorted(
                (g.role, g.project, g.stage)
                for g in session.exec(select(Grant).where(Grant.principal_id == slack))
            )
            assert roles == [("admin", "shop", "*"), ("approver", "shop", "*")]
            erin = session.exec(
                select(Grant)
                .join(Identity, Identity.principal_id == Grant.principal_id)  # type: ignore[arg-type]
                .where(Identity.user_id == "erin")
            ).one()
            assert erin.granted_by == slack
            [release] = session.exec(select(Release).where(Release.stage == "dev")).all()
            assert release.requested_by == slack
            first = session.get(ApprovalRequest, 1)
            assert first is not None and first.requested_by == slack
            votes = {
                r: [
                    v.principal_id
                    for v in session.exec(select(ApprovalVote).where(ApprovalVote.request_id == r))
                ]
                for r in (1, 2)
            }
            # One person counts once on #2, and no longer approves their own #1.
            assert votes == {1: [], 2: [slack]}
            assert session.exec(select(AuditEntry).where(AuditEntry.user_id == "D1")).first()
        # The merged person holds D1's lock (so may lift it from Slack) and D1's roles.
        outcome, said = await w.bot.run("U1", "unlock shop staging", **SLACK)
        assert outcome.status == "ok", said.all_text()
        outcome, said = await w.bot.run(
            "D1", "perms grant shell:local:erin deployer shop", **DISCORD
        )
        assert outcome.status == "ok", said.all_text()
        # #1 is the person's own request now: neither account may approve it.
        outcome, said = await w.bot.run("D1", "approve 1", **DISCORD)
        assert outcome.status == "denied", said.all_text()


def fail_principal_deletes(engine: Engine) -> None:
    """A real fault inside the merge's transaction: the database refuses its last step."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_principal_delete BEFORE DELETE ON principal "
                    "BEGIN SELECT RAISE(ABORT, 'principal deletes refused by the test'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_delete() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'principal deletes refused by the test'; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_principal_delete BEFORE DELETE ON principal "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
                )
            )


def allow_principal_deletes(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER refuse_principal_delete"))
        else:
            connection.execute(text("DROP TRIGGER refuse_principal_delete ON principal"))


async def test_a_merge_that_fails_changes_nothing_and_the_code_still_works(
    tmp_path: Path, database_url: str
) -> None:
    async with world(tmp_path, approvals=3, admins=ADMIN, database_url=database_url) as w:
        engine = w.services.engine
        _slack, discord = await busy_discord_self(w)
        code, confirm = await link(w)
        before = snapshot(engine)
        fail_principal_deletes(engine)
        outcome, said = await w.bot.run("U1", confirm, **SLACK)
        assert outcome.status != "ok", said.all_text()
        after = snapshot(engine)
        # Only the audit log learned something (the failed attempt).
        assert {t: rows for t, rows in after.items() if t != "audit_entry"} == {
            t: rows for t, rows in before.items() if t != "audit_entry"
        }
        with session_scope(engine) as session:
            assert session.get(LinkRequest, code).state == "claimed"  # type: ignore[union-attr]
        allow_principal_deletes(engine)
        outcome, said = await w.bot.run("U1", confirm, **SLACK)
        assert outcome.status == "ok", said.all_text()
        assert references_to(engine, discord) == {}


async def test_a_link_code_cannot_be_confirmed_after_it_expired_even_if_checked_before(
    tmp_path: Path, database_url: str
) -> None:
    """The expiry is part of the transaction's compare-and-set, not only a check before it."""
    async with world(tmp_path, admins=ADMIN, database_url=database_url) as w:
        engine = w.services.engine
        _, started = await w.bot.run("U1", "link", **SLACK)
        code = code_in(started.all_text())
        await w.bot.run("D1", f"link {code}", **DISCORD)
        from bot.clock import utcnow
        from bot.store.principals import LinkNotConfirmed, confirm_link

        confirmer = ensure_identity(engine, IdentityKey("slack", "T1", "U1"))
        with session_scope(engine) as session:
            session.execute(
                update(LinkRequest).where(LinkRequest.code == code).values(expires_at=utcnow())  # type: ignore[arg-type]
            )
        try:
            confirm_link(engine, code, confirmer.id or 0)
        except LinkNotConfirmed:
            pass
        else:
            raise AssertionError("an expired code linked")
        assert principal_of(engine, "discord", "G1", "D1") != confirmer.principal_id
