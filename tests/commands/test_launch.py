"""`/fly launch` against the Fly simulator over HTTP: a new stage gets its app, a shared IPv4
and an IPv6, its required secrets (privately) and a first deploy per process group in
primary_region, which `status` then shows; an existing app, a missing secret, a viewer and
a Fly failure are each one line with nothing changed (or, mid-way, what was done)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, Release
from tests.flyharness import World, world
from tests.support import assert_found_nowhere, snapshot, table_rows

SECRET = "postgres://fresh:s3cr3t-Value-9@db.internal:5432/fresh"

FRESH_TOML = """\
app = "fresh-{stage}"
primary_region = "sin"

[build]
  image = "registry.fly.io/fresh:v1"

[processes]
  web = "/app/fresh serve"
  worker = "/app/fresh work"

[http_service]
  internal_port = 8080
  processes = ["web"]

  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    grace_period = "1s"
    method = "GET"
    path = "/healthz"
"""

WORKER_ONLY = """\
app = "fresh-staging"
primary_region = "sin"

[build]
  image = "registry.fly.io/fresh:v1"

[processes]
  worker = "/app/fresh work"
"""

EXTRA = """
[projects.fresh]
path = "fresh"

[projects.fresh.stages.dev]
secrets = ["DATABASE_URL"]
"""


def write_fresh(root: Path) -> None:
    folder = root / "fresh"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fly.toml").write_text(FRESH_TOML.format(stage="dev"))
    (folder / "staging.fly.toml").write_text(WORKER_ONLY)
    (folder / "prod.fly.toml").write_text(FRESH_TOML.format(stage="prod"))


def fly_writes(w: World) -> list[object]:
    return [c for c in w.calls() if c.method not in ("GET", "HEAD") and c.operation != "GraphQL"]


async def test_a_new_stage_gets_app_ips_secrets_and_machines_per_group(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    write_fresh(tmp_path)
    async with world(tmp_path, extra_config=EXTRA) as w:
        outcome, conversation = await w.bot.run(
            "alice", "launch fresh dev DATABASE_URL", secrets={"DATABASE_URL": SECRET}
        )
        await w.services.jobs.wait_all()
        text = conversation.all_text()
        assert outcome.status == "ok", text
        assert "fresh-dev" in w.sim.state.apps
        ips = await w.fly.list_ip_assignments("fresh-dev")
        assert sorted(i.type for i in ips) == ["shared_v4", "v6"]
        for ip in ips:
            assert ip.ip in text
        machines = await w.machines("fresh-dev")
        groups = sorted((m.metadata.get("fly_process_group"), m.region, m.state) for m in machines)
        assert groups == [("web", "sin", "started")] * 2 + [("worker", "sin", "started")]
        for machine in machines:
            assert w.sim.machine_secrets("fresh-dev", machine.id) == {"DATABASE_URL": SECRET}
        [release] = table_rows(w.services.engine, Release)
        assert (release.kind, release.state, release.app) == ("launch", "succeeded", "fresh-dev")
        _, status = await w.bot.run("alice", "status fresh dev")
        shown = status.all_text()
        for machine in machines:
            assert machine.id in shown
        assert "web (2)" in shown and "worker (1)" in shown
        for ip in ips:
            assert ip.ip in shown
        # the value went to Fly only
        everything = text + status.all_text() + w.bot.outbox().all_text()
        assert_found_nowhere(
            SECRET,
            w.services.engine,
            w.root,
            replies=everything,
            log=caplog.text,
            fly_calls="\n".join(repr(c.body) for c in w.calls()),
        )


async def test_dry_run_shows_the_plan_and_creates_nothing(tmp_path: Path) -> None:
    write_fresh(tmp_path)
    async with world(tmp_path, extra_config=EXTRA) as w:
        outcome, conversation = await w.bot.run(
            "alice", "launch fresh dev DATABASE_URL --dry-run", secrets={"DATABASE_URL": SECRET}
        )
        text = conversation.all_text()
        assert outcome.status == "ok", text
        for line in (
            "Create app fresh-dev in org demo",
            "Allocate a shared IPv4 and an IPv6",
            "Set secrets DATABASE_URL",
            "[web] create 2 in sin",
            "[worker] create 1 in sin",
        ):
            assert line in text, text
        assert "fresh-dev" not in w.sim.state.apps
        assert fly_writes(w) == []


async def test_a_config_without_services_gets_no_ips(tmp_path: Path) -> None:
    write_fresh(tmp_path)
    async with world(tmp_path, extra_config=EXTRA) as w:
        outcome, conversation = await w.bot.run("alice", "launch fresh staging")
        await w.services.jobs.wait_all()
        assert outcome.status == "ok", conversation.all_text()
        assert "No public IPs" in conversation.all_text()
        assert await w.fly.list_ip_assignments("fresh-staging") == []
        assert w.calls("App_IPAssignments_create") == []
        [machine] = await w.machines("fresh-staging")
        assert machine.metadata.get("fly_process_group") == "worker"


@pytest.mark.parametrize(
    ("user", "line", "says", "status"),
    [
        ("alice", "launch shop staging", "shop-staging already exists on Fly", "error"),
        ("alice", "launch fresh dev", "needs secrets DATABASE_URL set at launch", "error"),
        ("vic", "launch fresh dev DATABASE_URL", "needs admin", "denied"),
        ("dee", "launch fresh dev DATABASE_URL", "needs admin", "denied"),
        ("alice", "launch fresh nowhere", "stage", "usage"),
    ],
)
async def test_refusals_are_one_line_and_change_nothing(
    tmp_path: Path, user: str, line: str, says: str, status: str
) -> None:
    write_fresh(tmp_path)
    async with world(tmp_path, extra_config=EXTRA) as w:
        await w.bot.run("alice", "perms grant shell:local:vic viewer * *")
        await w.bot.run("alice", "perms grant shell:local:dee approver * *")
        apps = set(w.sim.state.apps)
        machines = [(m.id, m.version, m.state) for m in await w.machines("shop-staging")]
        w.sim.calls.clear()
        before = snapshot(w.services.engine)
        secrets = {"DATABASE_URL": SECRET} if "DATABASE_URL" in line else None
        outcome, conversation = await w.bot.run(user, line, secrets=secrets)
        text = conversation.all_text()
        assert outcome.status == status, text
        assert says in text, text
        assert len(conversation.public + conversation.private) == 1
        assert set(w.sim.state.apps) == apps
        assert [(m.id, m.version, m.state) for m in await w.machines("shop-staging")] == machines
        assert fly_writes(w) == []
        after = snapshot(w.services.engine)
        for table in ("audit_entry", "dedupe_key"):
            before.pop(table, None), after.pop(table, None)
        assert after == before


async def test_a_guarded_stage_launches_only_once_approved(tmp_path: Path) -> None:
    write_fresh(tmp_path)
    async with world(tmp_path, extra_config=EXTRA) as w:
        await w.bot.run("alice", "perms grant shell:local:carol approver fresh prod")
        outcome, conversation = await w.bot.run("alice", "launch fresh prod")
        assert outcome.status == "awaiting", conversation.all_text()
        assert "fresh-prod" not in w.sim.state.apps
        with session_scope(w.services.engine) as session:
            [request] = list(session.exec(select(ApprovalRequest)))
        outcome, conversation = await w.bot.run("carol", f"approve {request.id}")
        await w.services.jobs.wait_all()
        assert outcome.status == "ok", conversation.all_text()
        assert len(await w.machines("fresh-prod")) == 3
        assert len(await w.fly.list_ip_assignments("fresh-prod")) == 2


async def test_fly_failures_retry_or_say_what_was_done(tmp_path: Path) -> None:
    write_fresh(tmp_path)
    async with world(tmp_path, extra_config=EXTRA) as w:
        w.sim.inject("Apps_create", status=429, count=1, retry_after=0)
        w.sim.inject("App_IPAssignments_create", status=500)
        outcome, conversation = await w.bot.run(
            "alice", "launch fresh dev DATABASE_URL", secrets={"DATABASE_URL": SECRET}
        )
        await w.services.jobs.wait_all()
        text = conversation.all_text()
        assert outcome.status == "error", text
        assert [c.status for c in w.calls("Apps_create")] == [429, 201]
        assert "allocating the IPv6 failed (500" in text
        assert "Done so far: app fresh-dev created in demo" in text
        assert w.calls("Machines_create") == [] and table_rows(w.services.engine, Release) == []
        w.sim.clear_faults()
        again, conversation = await w.bot.run(
            "alice", "launch fresh dev DATABASE_URL", secrets={"DATABASE_URL": SECRET}
        )
        assert again.status == "error"
        assert "fresh-dev already exists on Fly" in conversation.all_text()
