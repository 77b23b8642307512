"""`/fly secrets …` against the Fly simulator over HTTP: values only through the private
path and found only at Fly, `NAME=value` refused with nothing stored, `--stage` then
`secrets deploy` handing the new version to each machine once, and bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.store.engine import session_scope
from bot.store.models import AuditEntry, Release
from tests.flyharness import World
from tests.secrets.conftest import RaisedTexts, Shell, secrets_world
from tests.support import assert_found_nowhere, snapshot

VALUE = "hunter2-Qz8xV7-not-for-logs"
STAGING = "shop-staging"
WRITES = ("Secrets_update", "Secrets_set_one", "Secrets_delete", "Machines_update")


def fly_secrets(w: World, app: str = STAGING) -> dict[str, str]:
    return {n: s.value for n, s in w.sim.state.apps[app].secrets.items()}


def machines_of(w: World, app: str = STAGING) -> list[Any]:
    return [
        m
        for m in w.sim.state.apps[app].machines.values()
        if m.state not in ("destroying", "destroyed")
    ]


def updates_with(w: World, app: str, version: int) -> dict[str, int]:
    """Machine id -> how many updates carried min_secrets_version = `version`."""
    counted: dict[str, int] = {}
    for call in w.calls("Machines_update"):
        body = call.body or {}
        if f"/apps/{app}/" in call.path and body.get("min_secrets_version") == version:
            counted[call.machine_id] = counted.get(call.machine_id, 0) + 1
    return counted


def audit_rows(w: World) -> list[AuditEntry]:
    with session_scope(w.services.engine) as session:
        return list(session.exec(select(AuditEntry)))


def calls_text(w: World) -> str:
    return json.dumps([c.to_json() for c in w.sim.calls], default=str)


async def test_a_secret_set_through_the_shell_prompt_reaches_fly_and_nowhere_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Must show: the no-echo prompt; then the value searched in the debug log, every table,
    the audit log, every reply and the text of every exception raised: 0 hits."""
    async with secrets_world(tmp_path) as w:
        w.sim.inject("Secrets_update", status=500, count=1)  # one Fly failure on the way
        shell = Shell(w, "bob")
        with caplog.at_level(logging.DEBUG), RaisedTexts() as raised:
            screen = await shell.type(
                f"secrets set shop staging API_TOKEN\n{VALUE}\nwait\nsecrets list shop staging\n"
            )
            await w.services.jobs.wait_all()
        assert fly_secrets(w)["API_TOKEN"] == VALUE  # at Fly, and there only
        version = w.sim.state.apps[STAGING].secrets_version
        machines = machines_of(w)
        assert len(machines) == 6
        assert all(m.secrets_version == version for m in machines)
        assert all(
            w.sim.state.machine_secrets(STAGING, m.id)["API_TOKEN"] == VALUE for m in machines
        )
        assert updates_with(w, STAGING, version) == {m.id: 1 for m in machines}
        [release] = _releases(w, STAGING)
        assert (release.kind, release.state, release.secrets_version) == (
            "secrets",
            "succeeded",
            version,
        )
        assert "value of API_TOKEN (hidden): ********" in screen
        assert "API_TOKEN (new)" in screen and "succeeded" in screen
        assert "API_TOKEN" in screen.split("Secrets of shop/staging")[1]  # the list
        assert any("/secrets -> 500" in t for t in raised.texts)  # the tracer saw Fly's error
        assert "DEBUG" in caplog.text or caplog.records
        assert_found_nowhere(
            VALUE,
            w.services.engine,
            w.root,
            log=caplog.text,
            screen=screen,
            raised="\n".join(raised.texts),
            fly_calls=calls_text(w),
        )


def _releases(w: World, app: str) -> list[Release]:
    with session_scope(w.services.engine) as session:
        return list(session.exec(select(Release).where(Release.app == app)))


async def test_a_value_in_the_command_is_refused_with_nothing_stored(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        before_fly = fly_secrets(w)
        before_db = snapshot(w.services.engine)
        calls = len(w.sim.calls)
        shell = Shell(w, "bob")
        screen = await shell.type(f"secrets set shop staging API_TOKEN={VALUE} --stage\n")
        assert fly_secrets(w) == before_fly
        assert [c.operation for c in w.sim.calls[calls:]] == []  # Fly was not even asked
        assert "Refused: API_TOKEN=… puts a secret's value in the command text" in screen
        assert "`/fly secrets set shop staging API_TOKEN --stage`" in screen
        assert "asks for each value privately" in screen
        [entry] = [e for e in audit_rows(w) if e.action == "secrets set"]
        assert (entry.command, entry.outcome) == (
            "secrets set shop staging API_TOKEN --stage",
            "refused",
        )
        assert (entry.project, entry.stage, entry.display_name) == ("shop", "staging", "bob")
        after = snapshot(w.services.engine)
        for table in ("audit_entry", "principal", "identity"):
            before_db.pop(table, None), after.pop(table, None)
        assert after == before_db  # nothing but the audit entry (and bob's identity)
        assert_found_nowhere(VALUE, w.services.engine, w.root, screen=screen)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("secrets set shopp staging API_TOKEN", "Unknown project 'shopp'. Did you mean 'shop'?"),
        ("secrets set shop stagin API_TOKEN", "Unknown stage 'stagin' of shop."),
        ("secrets set shop staging 9LIVES", "<names> '9LIVES' is not a secret name"),
        ("secrets set shop staging", "Missing <names>."),
        ("secrets unset shop staging NOPE", "shop/staging (shop-staging) has no secret NOPE."),
        ("secrets deploy shop staging", "Nothing staged on shop/staging"),
        ("secrets list shop nope", "Unknown stage 'nope' of shop."),
    ],
)
async def test_bad_input_is_one_clear_line_and_changes_nothing(
    tmp_path: Path, line: str, says: str
) -> None:
    async with secrets_world(tmp_path) as w:
        await w.fly.set_secrets(STAGING, {"KEEP": "k"})
        before_fly, calls = fly_secrets(w), len(w.sim.calls)
        names = line.split()[4:]
        secrets = {n: "v" for n in names} if line.startswith("secrets set") else None
        await w.bot.run("bob", "whoami")  # bob's identity exists before the snapshot
        before = snapshot(w.services.engine)
        outcome, conversation = await w.bot.run("bob", line, secrets=secrets)
        assert outcome.status in ("usage", "error"), conversation.all_text()
        [reply] = conversation.private
        assert says in reply.text and "\n" not in reply.text, reply.text
        assert conversation.public == [] and conversation.threads == {}
        assert fly_secrets(w) == before_fly
        assert not [c for c in w.sim.calls[calls:] if c.operation in WRITES]
        after = snapshot(w.services.engine)
        before.pop("audit_entry"), after.pop("audit_entry")
        assert after == before


async def test_stage_then_deploy_hands_the_version_to_each_machine_once(tmp_path: Path) -> None:
    """Must show: `--stage` changes no machine; `secrets deploy` updates each once with the
    new version; a second `secrets deploy` finds nothing staged."""
    async with secrets_world(tmp_path) as w:
        staged, conversation = await w.bot.run(
            "bob",
            "secrets set shop staging API_TOKEN DB_URL --stage",
            secrets={"API_TOKEN": VALUE, "DB_URL": "postgres://x"},
        )
        assert staged.status == "ok", conversation.all_text()
        version = w.sim.state.apps[STAGING].secrets_version
        assert "Staged on shop/staging" in conversation.all_text()
        assert w.calls("Machines_update") == []
        assert all(m.secrets_version < version for m in machines_of(w))
        _, listing = await w.bot.run("vic", "secrets list shop staging")
        assert listing.all_text().count("* staged: not on the machines yet") == 2

        deployed, conversation = await w.bot.run("bob", "secrets deploy shop staging")
        assert deployed.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        machines = machines_of(w)
        assert updates_with(w, STAGING, version) == {m.id: 1 for m in machines}
        assert len(w.calls("Machines_update")) == len(machines)
        assert all(m.secrets_version == version for m in machines)
        assert (
            "Staged secrets to hand out: API_TOKEN (new), DB_URL (new)" in conversation.all_text()
        )

        again, conversation = await w.bot.run("bob", "secrets deploy shop staging")
        assert again.status == "error" and "Nothing staged" in conversation.all_text()
        assert len(w.calls("Machines_update")) == len(machines)
        _, listing = await w.bot.run("vic", "secrets list shop staging")
        assert "staged" not in listing.all_text()
        assert_found_nowhere(
            VALUE, w.services.engine, w.root, listing=listing.all_text(), fly_calls=calls_text(w)
        )


def sets_of(w: World, name: str) -> int:
    """Secrets_update calls that carried `name`."""
    return sum(1 for c in w.calls("Secrets_update") if name in ((c.body or {}).get("values") or {}))


async def test_a_set_whose_answer_was_lost_is_not_sent_again(tmp_path: Path) -> None:
    """Issue 8 point 7 for `secrets set`: Fly set it and the answer was lost, so the digests
    show it happened: not sent again; its version is learnt by unsetting a name nobody has,
    and the restart hands out at least that version."""
    async with secrets_world(tmp_path) as w:
        w.sim.inject("Secrets_update", status=500, applied=1.0, count=1)
        outcome, conversation = await w.bot.run(
            "bob", "secrets set shop staging API_TOKEN", secrets={"API_TOKEN": VALUE}
        )
        assert outcome.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert sets_of(w, "API_TOKEN") == 1 and fly_secrets(w)["API_TOKEN"] == VALUE
        syncs = [
            c for c in w.calls("Secrets_update") if c.body["values"] != {"API_TOKEN": "[redacted]"}
        ]
        assert len(syncs) == 1 and list(syncs[0].body["values"].values()) == [None]
        assert set(fly_secrets(w)) == {"API_TOKEN"}
        version = w.sim.state.apps[STAGING].secrets_version
        assert updates_with(w, STAGING, version) == {m.id: 1 for m in machines_of(w)}
        assert all(
            w.sim.state.machine_secrets(STAGING, m.id)["API_TOKEN"] == VALUE for m in machines_of(w)
        )


async def test_a_set_fly_refused_is_sent_again_once(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        w.sim.inject("Secrets_update", status=500, count=1)  # not carried out
        outcome, conversation = await w.bot.run(
            "bob", "secrets set shop staging API_TOKEN --stage", secrets={"API_TOKEN": VALUE}
        )
        assert outcome.status == "ok", conversation.all_text()
        assert sets_of(w, "API_TOKEN") == 2 and fly_secrets(w)["API_TOKEN"] == VALUE


# Fly's error quotes the JSON it was sent: a value with a quote or a backslash is written
# there escaped, and must be masked in that form too.
QUOTED = 'pa$$"w0rd\\Zz-not-for-logs'


@pytest.mark.parametrize("value", [VALUE, QUOTED], ids=["plain", "json-escaped"])
async def test_a_fly_error_that_quotes_the_value_reaches_no_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    async with secrets_world(tmp_path) as w:
        w.sim.inject("Secrets_update", status=422, echo=True)
        with caplog.at_level(logging.DEBUG), RaisedTexts() as raised:
            outcome, conversation = await w.bot.run(
                "bob", "secrets set shop staging API_TOKEN", secrets={"API_TOKEN": value}
            )
        assert outcome.status == "error"
        [reply] = conversation.private
        assert "Fly refused or failed" in reply.text and "could not process request" in reply.text
        assert '"API_TOKEN":"•••"' in reply.text  # Fly's quote, with the value masked
        assert fly_secrets(w) == {} and w.calls("Machines_update") == []
        [entry] = [e for e in audit_rows(w) if e.action == "secrets set"]
        assert entry.outcome == "error"
        raised_text = "\n".join(raised.texts)
        assert_found_nowhere(
            value,
            w.services.engine,
            w.root,
            log=caplog.text,
            replies=conversation.all_text(),
            raised=raised_text,
        )


async def test_unset_restarts_the_machines_without_it(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        await w.bot.run("bob", "secrets set shop staging OLD --stage", secrets={"OLD": "o"})
        outcome, conversation = await w.bot.run("bob", "secrets unset shop staging OLD")
        assert outcome.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert "OLD (removed)" in conversation.all_text()
        assert fly_secrets(w) == {}
        assert all("OLD" not in w.sim.state.machine_secrets(STAGING, m.id) for m in machines_of(w))


async def test_a_deploy_after_stage_hands_the_staged_secrets_out(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        await w.bot.run(
            "bob", "secrets set shop staging API_TOKEN --stage", secrets={"API_TOKEN": VALUE}
        )
        version = w.sim.state.apps[STAGING].secrets_version
        outcome, conversation = await w.bot.run(
            "bob", "deploy shop staging registry.fly.io/shop:v2"
        )
        assert outcome.status == "ok", conversation.all_text()
        await w.services.jobs.wait_all()
        assert updates_with(w, STAGING, version) == {m.id: 1 for m in machines_of(w)}
        again, conversation = await w.bot.run("bob", "secrets deploy shop staging")
        assert again.status == "error" and "Nothing staged" in conversation.all_text()


async def test_while_a_deploy_runs_set_refuses_before_changing_anything(tmp_path: Path) -> None:
    async with secrets_world(tmp_path) as w:
        w.sim.set_timing(start_s=1.0)  # the deploy is still running when set comes
        outcome, _ = await w.bot.run("bob", "deploy shop staging registry.fly.io/shop:v2")
        assert outcome.status == "ok"
        refused, conversation = await w.bot.run(
            "bob", "secrets set shop staging API_TOKEN", secrets={"API_TOKEN": VALUE}
        )
        assert refused.status == "error", conversation.all_text()
        assert (
            "is being deployed" in conversation.all_text() and "--stage" in conversation.all_text()
        )
        assert fly_secrets(w) == {}
        await w.services.jobs.wait_all()
