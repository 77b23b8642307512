"""`/fly restart` against the Fly simulator over HTTP: a rolling restart — every machine (or a
group's, or one) updated with its own config, leased, batch by batch, each waited for until
healthy — in the app's one deploy slot; guarded where the stage guards `restart`; bad input
one line with nothing changed; 429/500 from Fly ridden out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest
from tests.deploy.test_engine import releases
from tests.flyharness import OLD, World, world
from tests.support import snapshot

APP = "shop-staging"


def configs(machines: list[Any]) -> dict[str, dict[str, Any]]:
    """Each machine's config without the release metadata a restart rewrites."""
    out = {}
    for m in machines:
        config = m.config.to_json()
        meta = config.get("metadata") or {}
        for key in ("fly_release_id", "fly_release_version"):
            meta.pop(key, None)
        out[m.id] = config
    return out


async def restart(w: World, line: str, user: str = "alice") -> Any:
    outcome, conversation = await w.bot.run(user, line)
    await w.services.jobs.wait_all()
    return outcome, conversation


async def test_every_machine_restarts_with_its_own_config_rolling_with_leases(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        before = await w.machines(APP)
        outcome, conversation = await restart(w, "restart shop staging")
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert (release.kind, release.state) == ("restart", "succeeded"), release.error
        after = await w.machines(APP)
        assert {m.id for m in after} == {m.id for m in before}  # none created or destroyed
        assert configs(after) == configs(before)  # image and config kept
        assert all(m.version != b.version for m in after for b in before if m.id == b.id)
        assert all(m.state == "started" for m in after)
        updates = w.calls("Machines_update")
        assert sorted(c.machine_id for c in updates) == sorted(m.id for m in before)
        leased = {c.machine_id for c in w.calls("Machines_create_lease")}
        assert leased == {m.id for m in before}
        assert all(c.status == 200 for c in w.calls("Machines_release_lease"))
        text = conversation.all_text()
        assert "batch 1/" in text  # rolling: the first machine alone, then batches
        assert OLD in text


async def test_a_group_or_one_machine(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        machines = await w.machines(APP)
        web = {m.id for m in machines if m.metadata.get("fly_process_group") == "web"}
        outcome, conversation = await restart(w, "restart shop staging --group web")
        assert outcome.status == "ok", conversation.all_text()
        assert {c.machine_id for c in w.calls("Machines_update")} == web
        w.sim.calls.clear()
        one = sorted(web)[0]
        outcome, conversation = await restart(w, f"restart shop staging --machine {one}")
        assert outcome.status == "ok", conversation.all_text()
        assert [c.machine_id for c in w.calls("Machines_update")] == [one]
        assert [r.state for r in releases(w)] == ["succeeded", "succeeded"]


async def test_a_guarded_stage_restarts_only_once_approved(tmp_path: Path) -> None:
    async with world(tmp_path, guarded='"deploy", "rollback", "restart"') as w:
        await w.bot.run("alice", "perms grant shell:local:carol approver shop prod")
        outcome, conversation = await w.bot.run("alice", "restart shop prod")
        assert outcome.status == "awaiting", conversation.all_text()
        assert w.calls("Machines_update") == []
        with session_scope(w.services.engine) as session:
            [request] = list(session.exec(select(ApprovalRequest)))
        outcome, conversation = await restart(w, f"approve {request.id}", user="carol")
        assert outcome.status == "ok", conversation.all_text()
        assert len(w.calls("Machines_update")) == 6
        assert [r.kind for r in releases(w)] == ["restart"]


async def test_unguarded_by_default_and_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        outcome, conversation = await restart(w, "restart shop prod --dry-run")
        assert outcome.status == "ok"
        assert "[web] restart 4" in conversation.all_text()
        assert w.calls("Machines_update") == [] and releases(w) == []


@pytest.mark.parametrize(
    ("user", "line", "says", "status"),
    [
        ("alice", "restart shop staging --group nope", "No process group 'nope'", "usage"),
        (
            "alice",
            "restart shop staging --machine 0000dead0000",
            "no machine 0000dead0000",
            "error",
        ),
        ("alice", "restart shop nowhere", "stage", "usage"),
        ("vic", "restart shop staging", "needs deployer", "denied"),
    ],
)
async def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, user: str, line: str, says: str, status: str
) -> None:
    async with world(tmp_path) as w:
        await w.bot.run("alice", "perms grant shell:local:vic viewer * *")
        before = snapshot(w.services.engine)
        w.sim.calls.clear()
        outcome, conversation = await restart(w, line, user=user)
        assert outcome.status == status, conversation.all_text()
        assert says in conversation.all_text()
        writes = [c for c in w.calls() if c.method not in ("GET", "HEAD")]
        assert [c for c in writes if c.operation != "GraphQL"] == []
        after = snapshot(w.services.engine)
        for table in ("audit_entry", "dedupe_key"):
            before.pop(table, None), after.pop(table, None)
        assert after == before


async def test_429s_and_500s_are_ridden_out(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("*", status=429, rate=0.1)
        w.sim.inject("*", status=500, rate=0.1)
        outcome, conversation = await restart(w, "restart shop staging")
        w.sim.clear_faults()
        assert outcome.status == "ok", conversation.all_text()
        [release] = releases(w)
        assert release.state == "succeeded", release.error
        assert any(c.status in (429, 500) for c in w.calls())
