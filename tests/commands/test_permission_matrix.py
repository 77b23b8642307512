"""The permission matrix: every registered verb x role x scope, against the Fly simulator.

Each verb is refused just below its role and on scopes that do not cover it — and a refusal
changes nothing (no row, no Fly call) and is audited with who, what and why; at its role, on
each scope that covers it, the handler really runs and its effect is asserted (a deploy's
release row and machines in the simulator, a lock's row, a status reply naming the machines).

ADDING A VERB: add its entry to MATRIX below (`test_every_registered_verb_has_a_matrix_entry`
fails until you do). An entry is a list of `Case`s:

    "lock": [Case("lock shop staging", STAGING, effect=lock_row_exists)],

- `line`: what the user types; `{name}` fields are filled from what `setup` returns.
- `scope`: the (project, stage) the line acts on, `ANY` ("*") for a part it does not name.
- `effect(env, ran)`: asserts what the allowed run did (`ran.outcome`, `ran.conversation`,
  `ran.prepared` from setup). Use the simulator (`env.w.machines(app)`, `env.w.calls(op)`) for
  anything that reaches Fly, and the database for rows.
- `setup(env, user)`: runs before each attempt (`env.admin(line)` types as the admin
  `alice`), returns the values `line` and `effect` use.
- `needs`: only for a verb whose handler checks the role itself (`access=` in its declaration,
  e.g. approve); otherwise the registry's role is used, and a verb anyone may run is run
  by someone with no grant at all.
- `secrets`: values a verb with secret input gets beside the line, as an adapter's form would.

The world: project `shop` with stages dev, staging and prod (prod guarded for deploy and
rollback, one approval), each a Fly app with 4 web and 2 worker machines on image
registry.fly.io/shop:v1; project `hello` (dev) exists only as a scope that covers nothing here.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import utcnow
from bot.store.engine import session_scope
from bot.store.locks import acquire, current_lock, release
from bot.store.models import (
    ApprovalRequest,
    AuditEntry,
    Grant,
    LinkRequest,
    Release,
    UsageAlert,
    UsageDay,
    UsageSubscription,
)
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands import build_registry
from commands.dispatch import Outcome
from commands.roles import ANY, Role
from tests.flyharness import OLD, World, world
from tests.support import RecordingConversation, snapshot

ADMIN = "alice"
STAGING = ("shop", "staging")
PROD = ("shop", "prod")
_images = (f"registry.fly.io/shop:m{n}" for n in itertools.count(2))
_alerts = itertools.count(1)  # each test alert a threshold of its own


@dataclass
class Env:
    w: World
    users: Any = field(default_factory=lambda: (f"user{n}" for n in itertools.count()))

    async def admin(self, line: str) -> Outcome:
        outcome, conversation = await self.w.bot.run(ADMIN, line)
        assert outcome.status in ("ok", "awaiting"), conversation.all_text()
        await self.w.services.jobs.wait_all()
        return outcome


@dataclass
class Ran:
    outcome: Outcome
    conversation: RecordingConversation
    prepared: dict[str, Any]
    user: str

    @property
    def text(self) -> str:
        return self.conversation.all_text()


Effect = Callable[[Env, Ran], Awaitable[None]]
Setup = Callable[[Env, str], Awaitable[dict[str, Any]]]  # (env, the user about to type)
DECLARED = "declared"  # `Case.needs` default: the role the registry declares for the verb


@dataclass(frozen=True)
class Case:
    line: str
    scope: tuple[str, str]
    effect: Effect
    setup: Setup | None = None
    needs: Role | str | None = DECLARED
    secrets: dict[str, str] | None = None
    status: str = "ok"  # the allowed run's outcome ("awaiting" on a guarded stage)


# --- effects and set-ups ----------------------------------------------------------------


def rows(env: Env, model: Any) -> list[Any]:
    with session_scope(env.w.services.engine) as session:
        return list(session.exec(select(model)))


async def images_of(env: Env, app: str) -> set[str]:
    """The images an app's machines run, without their pinned digests."""
    return {
        ((m.config.image if m.config else "") or "").split("@", 1)[0]
        for m in await env.w.machines(app)
    }


async def fresh_image(env: Env, user: str) -> dict[str, Any]:
    return {"image": next(_images)}


async def deployed(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    image = ran.prepared["image"]
    found = [r for r in rows(env, Release) if r.image.split("@", 1)[0] == image]
    assert len(found) == 1, f"no release row of {image}: {ran.text}"
    [release] = found
    assert (release.state, release.stage, release.requester_name) == (
        "succeeded",
        "staging",
        ran.user,
    )
    assert await images_of(env, "shop-staging") == {image}
    machines = await env.w.machines("shop-staging")
    assert len(machines) == 6
    assert {m.config.metadata.get("fly_release_version") for m in machines if m.config} == {
        str(release.version)
    }


async def guarded_request(env: Env, ran: Ran) -> None:
    [request] = [r for r in rows(env, ApprovalRequest) if ran.prepared["image"] in r.command]
    assert (request.state, request.stage, request.requester_name) == ("pending", "prod", ran.user)
    assert await images_of(env, "shop-prod") == {OLD}  # nothing runs before approval


async def two_releases(env: Env, user: str) -> dict[str, Any]:
    """staging ran two deploys; a rollback goes back to the first."""
    older, newer = next(_images), next(_images)
    await env.admin(f"deploy shop staging {older}")
    await env.admin(f"deploy shop staging {newer}")
    return {"older": older, "newer": newer}


async def rolled_back(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    latest = max(rows(env, Release), key=lambda r: r.version)
    assert (latest.kind, latest.state, latest.requester_name) == ("rollback", "succeeded", ran.user)
    assert await images_of(env, "shop-staging") == {ran.prepared["older"]}


async def names_machines(env: Env, ran: Ran) -> None:
    machines = await env.w.machines("shop-staging")
    assert len(machines) == 6
    for machine in machines:
        assert machine.id in ran.text, (machine.id, ran.text)


async def names_apps(env: Env, ran: Ran) -> None:
    for app in ("shop-dev", "shop-staging", "shop-prod"):
        assert app in ran.text, ran.text
    assert "← shop/staging" in ran.text


async def one_release(env: Env, user: str) -> dict[str, Any]:
    image = next(_images)
    await env.admin(f"deploy shop staging {image}")
    return {"image": image}


async def lists_release(env: Env, ran: Ran) -> None:
    assert ran.prepared["image"] in ran.text and f"by {ADMIN}" in ran.text, ran.text


async def prod_request(env: Env, user: str) -> dict[str, Any]:
    image = next(_images)
    outcome = await env.admin(f"deploy shop prod {image}")
    assert outcome.status == "awaiting"
    [request] = [r for r in rows(env, ApprovalRequest) if image in r.command]
    return {"id": request.id, "image": image}


async def lists_request(env: Env, ran: Ran) -> None:
    assert f"#{ran.prepared['id']} deploy shop/prod by {ADMIN}" in ran.text, ran.text


async def approved_and_deployed(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    [request] = [r for r in rows(env, ApprovalRequest) if r.id == ran.prepared["id"]]
    assert request.state == "executed", request
    [release] = [r for r in rows(env, Release) if r.approvers == ran.user]
    assert release.state == "succeeded" and release.stage == "prod"
    assert await images_of(env, "shop-prod") == {ran.prepared["image"]}


async def rejected(env: Env, ran: Ran) -> None:
    [request] = [r for r in rows(env, ApprovalRequest) if r.id == ran.prepared["id"]]
    assert request.state == "rejected" and "changed my mind" in request.reason, request


async def a_status_read(env: Env, user: str) -> dict[str, Any]:
    await env.admin("status shop staging")
    return {}


async def shows_audit(env: Env, ran: Ran) -> None:
    assert f"{ADMIN} (shell:{ADMIN}) status shop/staging → ok" in ran.text, ran.text


def grants_of(env: Env, user: str) -> list[Grant]:
    identity = ensure_identity(env.w.services.engine, IdentityKey("shell", "local", user), user)
    return [g for g in rows(env, Grant) if g.principal_id == identity.principal_id]


async def target_user(env: Env, user: str) -> dict[str, Any]:
    return {"target": next(env.users)}


async def granted(env: Env, ran: Ran) -> None:
    [row] = grants_of(env, ran.prepared["target"])
    assert (row.role, row.project, row.stage) == ("viewer", *STAGING)


async def target_with_grant(env: Env, user: str) -> dict[str, Any]:
    target = next(env.users)
    await env.admin(f"perms grant shell:local:{target} viewer shop staging")
    return {"target": target}


async def revoked(env: Env, ran: Ran) -> None:
    assert grants_of(env, ran.prepared["target"]) == []


async def lists_grants(env: Env, ran: Ran) -> None:
    target = ran.prepared["target"]
    assert f"viewer  {target} (shell:{target})" in ran.text, ran.text


async def locked(env: Env, ran: Ran) -> None:
    held = current_lock(env.w.services.engine, "shop", "staging")
    assert held is not None and held.owner_name == ran.user
    await env.admin("unlock shop staging")  # an admin's force-unlock, for the next attempt


async def own_lock(env: Env, user: str) -> dict[str, Any]:
    """The user holds the stage's lock (taken in the database: whether they could take it
    with `lock` is that verb's case)."""
    engine = env.w.services.engine
    held = current_lock(engine, "shop", "staging")
    if held is not None and held.id is not None:
        release(engine, held.id)  # a refused attempt before this one left its lock
    identity = ensure_identity(engine, IdentityKey("shell", "local", user), user)
    expires = utcnow() + timedelta(hours=1)
    taken, _ = acquire(engine, "shop", "staging", identity.principal_id, user, "", expires)
    assert taken
    return {}


async def unlocked(env: Env, ran: Ran) -> None:
    assert current_lock(env.w.services.engine, "shop", "staging") is None


async def lists_commands(env: Env, ran: Ran) -> None:
    for verb in ("deploy", "status", "approve"):
        assert f"/fly {verb}" in ran.text, ran.text


async def names_the_user(env: Env, ran: Ran) -> None:
    assert f"shell:local:{ran.user}" in ran.text, ran.text


def link_state(env: Env, code: str) -> str:
    [request] = [r for r in rows(env, LinkRequest) if r.code == code]
    return str(request.state)


def code_in(text: str) -> str:
    return text.split("`/fly link ", 1)[1].split("`", 1)[0].removeprefix("confirm ")


async def link_started(env: Env, ran: Ran) -> None:
    assert link_state(env, code_in(ran.text)) == "started"


async def started_on_slack(env: Env, user: str) -> dict[str, Any]:
    """A Slack account started a link; the shell user types its code."""
    outcome, conversation = await env.w.bot.run(
        next(env.users), "link", platform="slack", workspace="T1"
    )
    assert outcome.status == "ok", conversation.all_text()
    return {"code": code_in(conversation.all_text())}


async def link_claimed(env: Env, ran: Ran) -> None:
    assert link_state(env, ran.prepared["code"]) == "claimed"


async def claimed_on_slack(env: Env, user: str) -> dict[str, Any]:
    """The shell user started a link and a Slack account typed its code."""
    _, conversation = await env.w.bot.run(user, "link")
    code = code_in(conversation.all_text())
    outcome, conversation = await env.w.bot.run(
        next(env.users), f"link {code}", platform="slack", workspace="T1"
    )
    assert outcome.status == "ok", conversation.all_text()
    return {"code": code}


async def link_confirmed(env: Env, ran: Ran) -> None:
    assert link_state(env, ran.prepared["code"]) == "done"
    assert "Linked:" in ran.text


HOST = "www.example.com"


async def hostnames(env: Env) -> set[str]:
    return {c.hostname for c in await env.w.fly.list_certificates("shop-staging")}


async def cert_added(env: Env, ran: Ran) -> None:
    assert HOST in await hostnames(env), ran.text
    assert HOST in ran.text
    await env.w.fly.delete_certificate("shop-staging", HOST)  # for the next attempt


async def a_cert(env: Env, user: str) -> dict[str, Any]:
    if HOST not in await hostnames(env):
        await env.w.fly.add_certificate("shop-staging", HOST)
    return {}


async def names_cert(env: Env, ran: Ran) -> None:
    assert HOST in ran.text, ran.text


async def cert_removed(env: Env, ran: Ran) -> None:
    assert HOST not in await hostnames(env), ran.text


async def shows_logs(env: Env, ran: Ran) -> None:
    machines = await env.w.machines("shop-staging")
    [reply] = ran.conversation.public
    assert reply.code and "listening on 0.0.0.0:8080" in ran.text, ran.text
    assert {line.split(" ")[1] for line in reply.code} <= {m.id for m in machines}


async def staging_app_gone(env: Env, user: str) -> dict[str, Any]:
    """shop-staging is not on Fly (yet): the stage is one to launch."""
    with env.w.sim.lock:
        if "shop-staging" in env.w.sim.state.apps:
            env.w.sim.state.delete_app("shop-staging")
    return {}


async def launched(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    machines = await env.w.machines("shop-staging")
    assert sorted(m.metadata.get("fly_process_group") for m in machines) == [
        "web",
        "web",
        "worker",
    ], ran.text
    ips = await env.w.fly.list_ip_assignments("shop-staging")
    assert sorted(i.type for i in ips) == ["shared_v4", "v6"]


async def web_target(env: Env, user: str) -> dict[str, Any]:
    """One more web machine than staging has now (one fewer past six)."""
    now = len([m for m in await env.w.machines("shop-staging") if _group(m) == "web"])
    return {"n": now + 1 if now < 6 else now - 1}


def _group(machine: Any) -> str:
    return str(machine.metadata.get("fly_process_group", ""))


async def web_counted(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    web = [m for m in await env.w.machines("shop-staging") if _group(m) == "web"]
    assert len(web) == ran.prepared["n"], ran.text
    assert all(m.state == "started" for m in web)


async def worker_size(env: Env, user: str) -> dict[str, Any]:
    """The other size than staging's workers have now."""
    [first, *_] = [m for m in await env.w.machines("shop-staging") if _group(m) == "worker"]
    cpus = first.config.guest.cpus if first.config and first.config.guest else 1
    return {"size": "shared-cpu-1x" if cpus == 2 else "shared-cpu-2x"}


async def workers_resized(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    want = 2 if ran.prepared["size"] == "shared-cpu-2x" else 1
    workers = [m for m in await env.w.machines("shop-staging") if _group(m) == "worker"]
    assert len(workers) == 2
    for machine in workers:
        assert machine.config and machine.config.guest and machine.config.guest.cpus == want


async def shows_groups(env: Env, ran: Ran) -> None:
    assert "[web]" in ran.text and "[worker]" in ran.text, ran.text
    for machine in await env.w.machines("shop-staging"):
        assert machine.id in ran.text, (machine.id, ran.text)


SECRET = "matrix-value-Zr8"


def fly_secret_names(env: Env) -> set[str]:
    return set(env.w.sim.state.apps["shop-staging"].secrets)


async def a_secret(env: Env, user: str) -> dict[str, Any]:
    await env.w.fly.set_secrets("shop-staging", {"OLD_TOKEN": "old"})
    return {}


async def names_secret(env: Env, ran: Ran) -> None:
    assert "OLD_TOKEN" in ran.text and "old" not in ran.text.replace("OLD_TOKEN", ""), ran.text


async def secret_staged(env: Env, ran: Ran) -> None:
    assert env.w.sim.state.apps["shop-staging"].secrets["API_TOKEN"].value == SECRET
    assert "Staged on shop/staging" in ran.text and SECRET not in ran.text
    await env.w.fly.unset_secrets("shop-staging", ["API_TOKEN"])  # for the next attempt


async def restarted_with_secrets(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    release = max(rows(env, Release), key=lambda r: r.id or 0)
    assert (release.kind, release.state) == ("secrets", "succeeded"), ran.text
    version = env.w.sim.state.apps["shop-staging"].secrets_version
    assert release.secrets_version == version
    machines = env.w.sim.state.apps["shop-staging"].machines.values()
    assert all(m.secrets_version == version for m in machines if m.state == "started")
    assert SECRET not in ran.text


async def secret_unset(env: Env, ran: Ran) -> None:
    assert "OLD_TOKEN" not in fly_secret_names(env), ran.text


async def staged_secret(env: Env, user: str) -> dict[str, Any]:
    outcome, conversation = await env.w.bot.run(
        ADMIN, "secrets set shop staging API_TOKEN --stage", secrets={"API_TOKEN": SECRET}
    )
    assert outcome.status == "ok", conversation.all_text()
    return {}


async def restarted(env: Env, ran: Ran) -> None:
    await env.w.services.jobs.wait_all()
    latest = max(rows(env, Release), key=lambda r: r.version)
    assert (latest.kind, latest.state, latest.requester_name) == ("restart", "succeeded", ran.user)
    assert await images_of(env, "shop-staging") == {OLD}  # the same image, restarted


async def usage_reported(env: Env, ran: Ran) -> None:
    assert "Usage of" in ran.text and "Estimated bill: $" in ran.text, ran.text
    [reply] = [r for r in ran.conversation.public if r.files]
    assert reply.files[0].data.startswith(b"\x89PNG")
    assert rows(env, UsageDay), "the report sampled the days it lacked"


async def subscribed(env: Env, ran: Ran) -> None:
    [row] = [r for r in rows(env, UsageSubscription) if r.created_by_name == ran.user]
    assert (row.schedule, row.channel_id, row.project) == ("weekly", "#ops", "shop")


async def a_subscription(env: Env, user: str) -> dict[str, Any]:
    await env.admin("usage subscribe daily #finance")
    return {"id": max(r.id or 0 for r in rows(env, UsageSubscription))}


async def unsubscribed(env: Env, ran: Ran) -> None:
    assert ran.prepared["id"] not in {r.id for r in rows(env, UsageSubscription)}


async def lists_subscription(env: Env, ran: Ran) -> None:
    assert f"#{ran.prepared['id']} org usage daily to #finance" in ran.text, ran.text


async def an_alert(env: Env, user: str) -> dict[str, Any]:
    """An alert whose suggestion is a verb that exists (`status`), as its button carries it."""
    with session_scope(env.w.services.engine) as session:
        row = UsageAlert(
            month="2026-12",
            metric="machine_hours",
            threshold=next(_alerts),
            action_line="status shop staging",
        )
        session.add(row)
        session.flush()
        return {"id": row.id}


async def some_traffic(env: Env, user: str) -> dict[str, Any]:
    import time

    env.w.sim.set_traffic("shop-staging", since=time.time() - 3600)
    return {}


async def charted(env: Env, ran: Ran) -> None:
    [reply] = ran.conversation.public
    [png] = reply.files
    assert png.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "machines up 6/6" in ran.text, ran.text


# --- the matrix: one entry per registered verb (see the module docstring) ----------------

MATRIX: dict[str, list[Case]] = {
    "help": [Case("help", (ANY, ANY), lists_commands)],
    "whoami": [Case("whoami", (ANY, ANY), names_the_user)],
    "link": [
        Case("link", (ANY, ANY), link_started),
        Case("link {code}", (ANY, ANY), link_claimed, started_on_slack),
    ],
    "link confirm": [Case("link confirm {code}", (ANY, ANY), link_confirmed, claimed_on_slack)],
    "perms grant": [
        Case("perms grant shell:local:{target} viewer shop staging", STAGING, granted, target_user)
    ],
    "perms revoke": [
        Case(
            "perms revoke shell:local:{target} viewer shop staging",
            STAGING,
            revoked,
            target_with_grant,
        )
    ],
    "perms list": [
        Case("perms list shop", ("shop", ANY), lists_grants, target_with_grant),
        Case("perms list", (ANY, ANY), lists_grants, target_with_grant),
    ],
    "audit": [
        Case("audit shop", ("shop", ANY), shows_audit, a_status_read),
        Case("audit", (ANY, ANY), shows_audit, a_status_read),
    ],
    "lock": [Case("lock shop staging", STAGING, locked)],
    "unlock": [Case("unlock shop staging", STAGING, unlocked, own_lock)],
    "status": [Case("status shop staging", STAGING, names_machines)],
    "apps": [Case("apps", (ANY, ANY), names_apps)],
    "logs": [Case("logs shop staging --lines 100", STAGING, shows_logs)],
    "metrics": [Case("metrics shop staging", STAGING, charted, some_traffic)],
    "restart": [Case("restart shop staging --group worker", STAGING, restarted)],
    "launch": [Case("launch shop staging", STAGING, launched, staging_app_gone)],
    "deploy": [
        Case("deploy shop staging {image}", STAGING, deployed, fresh_image),
        Case("deploy shop prod {image}", PROD, guarded_request, fresh_image, status="awaiting"),
    ],
    "rollback": [Case("rollback shop staging", STAGING, rolled_back, two_releases)],
    "releases": [Case("releases shop staging", STAGING, lists_release, one_release)],
    "pending": [Case("pending shop", ("shop", ANY), lists_request, prod_request)],
    "approve": [
        Case("approve {id}", PROD, approved_and_deployed, prod_request, needs=Role.approver)
    ],
    "certs add": [Case(f"certs add shop staging {HOST}", STAGING, cert_added)],
    "certs list": [Case("certs list shop staging", STAGING, names_cert, a_cert)],
    "certs show": [Case(f"certs show shop staging {HOST}", STAGING, names_cert, a_cert)],
    "certs check": [Case("certs check shop staging", STAGING, names_cert, a_cert)],
    "certs remove": [Case(f"certs remove shop staging {HOST}", STAGING, cert_removed, a_cert)],
    "scale show": [Case("scale show shop staging", STAGING, shows_groups)],
    "scale count": [Case("scale count shop staging web={n}", STAGING, web_counted, web_target)],
    "scale vm": [
        Case("scale vm shop staging {size} --group worker", STAGING, workers_resized, worker_size)
    ],
    "reject": [
        Case("reject {id} changed my mind", PROD, rejected, prod_request, needs=Role.approver)
    ],
    "secrets list": [Case("secrets list shop staging", STAGING, names_secret, a_secret)],
    "secrets set": [
        Case(
            "secrets set shop staging API_TOKEN --stage",
            STAGING,
            secret_staged,
            secrets={"API_TOKEN": SECRET},
        ),
        Case(
            "secrets set shop staging API_TOKEN",
            STAGING,
            restarted_with_secrets,
            secrets={"API_TOKEN": SECRET},
        ),
    ],
    "secrets unset": [
        Case("secrets unset shop staging OLD_TOKEN --stage", STAGING, secret_unset, a_secret)
    ],
    "secrets deploy": [
        Case("secrets deploy shop staging", STAGING, restarted_with_secrets, staged_secret)
    ],


    "usage": [
        Case("usage shop", ("shop", ANY), usage_reported),
        Case("usage", (ANY, ANY), usage_reported),
    ],
    "usage subscribe": [Case("usage subscribe weekly #ops --project shop", (ANY, ANY), subscribed)],
    "usage unsubscribe": [Case("usage unsubscribe {id}", (ANY, ANY), unsubscribed, a_subscription)],
    "usage subscriptions": [
        Case("usage subscriptions", (ANY, ANY), lists_subscription, a_subscription)
    ],
    "usage action": [Case("usage action {id}", (ANY, ANY), names_machines, an_alert)],
}


# --- the test ------------------------------------------------------------------------------

MATRIX_FILE = "tests/commands/test_permission_matrix.py"
CASES = [(name, n, case) for name, cases in MATRIX.items() for n, case in enumerate(cases)]


def test_every_registered_verb_has_a_matrix_entry() -> None:
    registered = {c.name for c in build_registry().commands.values()}
    missing = sorted(registered - MATRIX.keys())
    assert not missing, (
        f"verbs without a permission-matrix entry: {', '.join(missing)}. Add an entry for each "
        f"to MATRIX in {MATRIX_FILE}: the line a user types, the scope it acts on, and an "
        "effect that asserts what the allowed run did (see the module docstring)."
    )
    stale = sorted(MATRIX.keys() - registered)
    assert not stale, f"MATRIX in {MATRIX_FILE} names verbs nobody registers: {stale}"
    empty = sorted(name for name, cases in MATRIX.items() if not cases)
    assert not empty, f"MATRIX entries without a case: {empty}"


def needed_role(name: str, case: Case) -> Role | None:
    command = build_registry().named(name)
    if case.needs == DECLARED:
        return command.role
    assert command.role is None and command.access, (
        f"{name} declares role {command.role}: drop `needs` from its MATRIX entry"
    )
    assert case.needs is None or isinstance(case.needs, Role)
    return case.needs


def scopes_for(scope: tuple[str, str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Grant scopes that cover `scope`, and ones that do not."""
    project, stage = scope
    if project == ANY:
        return [(ANY, ANY)], [("shop", ANY), ("shop", "staging")]
    if stage == ANY:
        return [(project, ANY), (ANY, ANY)], [(project, "dev"), ("hello", ANY)]
    return [(project, stage), (project, ANY), (ANY, ANY)], [(project, "dev"), ("hello", ANY)]


HELLO = (
    'app = "hello-dev"\nprimary_region = "nrt"\n\n[build]\n  image = "registry.fly.io/hello:v1"\n'
)
WITHOUT_AUDIT = ("audit_entry", "dedupe_key")


def denial_entries(env: Env, user: str) -> list[AuditEntry]:
    return [e for e in rows(env, AuditEntry) if e.user_id == user and e.outcome == "denied"]


@pytest.mark.parametrize(("name", "n", "case"), CASES, ids=[f"{c[0]}#{c[1]}" for c in CASES])
async def test_role_by_scope(tmp_path: Path, name: str, n: int, case: Case) -> None:
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "fly.toml").write_text(HELLO)
    extra = '\n[projects.hello]\npath = "hello"\n'
    async with world(tmp_path, admins=(f"shell:local:{ADMIN}",), extra_config=extra) as w:
        env = Env(w)
        needed = needed_role(name, case)
        engine = w.services.engine

        def person(role: Role | None, project: str = ANY, stage: str = ANY) -> str:
            user = next(env.users)
            identity = ensure_identity(engine, IdentityKey("shell", "local", user), user)
            if role is not None:
                add_grant(engine, identity.principal_id, role.name, project, stage, None)
            return user

        async def attempt(user: str) -> Ran:
            prepared = await case.setup(env, user) if case.setup else {}
            outcome, conversation = await w.bot.run(
                user, case.line.format(**prepared), secrets=case.secrets
            )
            return Ran(outcome, conversation, prepared, user)

        async def expect_denied(user: str, why: str) -> None:
            prepared = await case.setup(env, user) if case.setup else {}
            await w.services.jobs.wait_all()
            before, calls = snapshot(engine), len(w.sim.calls)
            line = case.line.format(**prepared)
            outcome, conversation = await w.bot.run(user, line, secrets=case.secrets)
            await w.services.jobs.wait_all()
            assert outcome.status == "denied", (user, line, why, conversation.all_text())
            assert needed is not None
            where = f"needs {needed.name} on {case.scope[0]}/{case.scope[1]}"
            assert where in conversation.all_text(), conversation.all_text()
            after = snapshot(engine)
            for table in WITHOUT_AUDIT:
                before.pop(table, None), after.pop(table, None)
            assert after == before, f"a refused {line!r} changed the database"
            assert w.sim.calls[calls:] == [], f"a refused {line!r} called Fly"
            [entry] = denial_entries(env, user)
            assert (entry.action, entry.display_name, entry.platform) == (name, user, "shell")
            assert where in entry.reason

        async def expect_allowed(user: str) -> None:
            ran = await attempt(user)
            assert ran.outcome.status == case.status, (user, ran.outcome, ran.text)
            assert denial_entries(env, user) == []
            await case.effect(env, ran)
            await w.services.jobs.wait_all()

        if needed is None:  # anyone may: a person with no grant at all
            await expect_allowed(person(None))
            return
        await expect_denied(person(None), "no grant")
        matching, other = scopes_for(case.scope)
        for project, stage in matching:
            if needed > Role.viewer:
                below = Role(needed - 1)
                await expect_denied(person(below, project, stage), f"{below.name} is below")
            await expect_allowed(person(needed, project, stage))
        for project, stage in other:
            await expect_denied(
                person(Role.admin, project, stage), f"{project}/{stage} does not cover"
            )
