"""flybot.toml is checked strictly at load: a typo in a policy is one clear error naming the
file, the key and the values allowed, never a silently weaker gate; and the production end of
every project (the last stage in its order) is guarded whatever its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.projects import (
    DEFAULT_GUARDED,
    GUARDABLE_VERBS,
    ConfigError,
    load_catalog,
)
from commands import build_registry
from commands.roles import Role


def make(tmp_path: Path, flybot: str, stages: tuple[str, ...] = ("dev", "prod")) -> Path:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    for stage in stages:
        name = "fly.toml" if stage == "dev" else f"{stage}.fly.toml"
        (folder / name).write_text(f'app = "p-{stage}"\n')
    config = tmp_path / "flybot.toml"
    config.write_text('[projects.p]\npath = "p"\n' + flybot)
    return config


BAD: list[tuple[str, str, tuple[str, ...]]] = [
    # (what follows [projects.p], the error's key, words the error must contain)
    (
        '[projects.p.stages.prod]\nguarded = ["Deploy"]\n',
        "guarded",
        ("unknown verb 'Deploy'", "deploy, rollback"),
    ),
    ('[projects.p.stages.prod]\nguarded = ["deploy", "depoly"]\n', "guarded", ("'depoly'",)),
    ('[projects.p.stages.prod]\nguarded = "deploy"\n', "guarded", ("a list of verbs",)),
    ("[projects.p.stages.prod]\nguarded = [1]\n", "guarded", ("a list of verbs",)),
    (
        '[projects.p.stages.prod]\napprover_role = "aprover"\n',
        "approver_role",
        ("unknown role 'aprover'", "approver, admin"),
    ),
    ('[projects.p.stages.prod]\napprover_role = "viewer"\n', "approver_role", ("viewer",)),
    ("[projects.p.stages.prod]\napprover_role = 3\n", "approver_role", ("3",)),
    ("[projects.p.stages.prod]\napprovals = true\n", "approvals", ("whole number", "true")),
    ('[projects.p.stages.prod]\napprovals = "2"\n', "approvals", ("whole number",)),
    ("[projects.p.stages.prod]\napprovals = 1.5\n", "approvals", ("whole number",)),
    ("[projects.p.stages.prod]\napprovals = -1\n", "approvals", ("whole number",)),
    (
        '[projects.p.stages.prod]\nrollback_on_failure = "false"\n',
        "rollback_on_failure",
        ("true or false", "'false'"),
    ),
    (
        "[projects.p.stages.prod]\nrollback_on_failure = 0\n",
        "rollback_on_failure",
        ("true or false",),
    ),
    ('[projects.p.stages.prod]\nfail_fast = "yes"\n', "fail_fast", ("true or false",)),
    ('[projects.p.stages.prod]\nsecrets = "DATABASE_URL"\n', "secrets", ("list of secret names",)),
    ('[projects.p.stages.prod]\nsecrets = ["DATABASE-URL"]\n', "secrets", ("DATABASE-URL",)),
    ('[projects.p.stages.prod]\nsecrets = ["A", "A"]\n', "secrets", ("twice",)),
    ("[projects.p.stages.prod]\napproval_expires = 30\n", "approval_expires", ("duration",)),
    ('[projects.p.stages.prod]\nfreeze = "Fri 16:00-Mon 08:00 UTC"\n', "freeze", ("list",)),
    ("[projects.p.stages.prod]\nfreeze = [5]\n", "freeze", ("freeze window",)),
    (
        '[projects.p.stages.prod]\nguarded = ["deploy"]\napprovals = 0\n',
        "approvals",
        ("guards nothing",),
    ),
    ("[projects.p.stages.dev]\napprovals = 1\n", "approvals", ("no verb is guarded",)),
    ('order = ["dev", "staging", "prod"]\n', "order", ("'staging'", "dev, prod")),
    ('order = ["dev", "dev", "prod"]\n', "order", ("twice",)),
    ('order = "dev,prod"\n', "order", ("a list of stage names",)),
    ("order = []\n", "order", ("a list of stage names",)),
    (
        'order = ["prod"]\n[projects.p.stages.dev]\nfreeze = []\n',
        "stages.dev",
        ("not in 'order'",),
    ),
    ('pth = "p"\n', "pth", ("unknown key", "order, path, stages")),
]


@pytest.mark.parametrize(("extra", "key", "words"), BAD, ids=[b[0].strip() for b in BAD])
def test_a_malformed_policy_is_one_error_naming_file_key_and_allowed_values(
    tmp_path: Path, extra: str, key: str, words: tuple[str, ...]
) -> None:
    config = make(tmp_path, extra)
    with pytest.raises(ConfigError) as raised:
        load_catalog(config)
    message = str(raised.value)
    assert str(config) in message
    assert key in message
    for word in words:
        assert word in message, message
    assert "\n" not in message


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    config = make(tmp_path, "")
    config.write_text('admin = ["slack:T1:U1"]\n' + config.read_text())
    with pytest.raises(ConfigError, match="unknown key 'admin'; keys: admins, projects"):
        load_catalog(config)


@pytest.mark.parametrize("last", ["prod", "production", "live"])
def test_the_last_stage_is_guarded_by_default_whatever_its_name(tmp_path: Path, last: str) -> None:
    config = make(tmp_path, f'order = ["dev", "staging", "{last}"]\n', ("dev", "staging", last))
    project = load_catalog(config).projects["p"]
    assert project.stage_names == ["dev", "staging", last]
    *earlier, production = project.stages
    assert production.policy.guarded == DEFAULT_GUARDED
    assert production.policy.approvals == 1
    assert all(s.policy.guarded == () and s.policy.approvals == 0 for s in earlier)


def test_with_no_order_and_no_prod_stage_the_production_end_must_be_named(tmp_path: Path) -> None:
    config = make(tmp_path, "", stages=("dev", "staging", "production"))
    with pytest.raises(ConfigError, match=r"\[projects\.p\]: 'order'.*production, staging"):
        load_catalog(config)
    # one stage besides dev is unambiguous: it is the production end
    (tmp_path / "p" / "staging.fly.toml").unlink()
    _dev, production = load_catalog(config).projects["p"].stages
    assert production.name == "production" and production.policy.guarded == DEFAULT_GUARDED


def test_a_stage_named_prod_that_is_not_last_is_not_the_production_end(tmp_path: Path) -> None:
    config = make(tmp_path, 'order = ["prod", "dev"]\n')
    prod, dev = load_catalog(config).projects["p"].stages
    assert dev.policy.guarded == DEFAULT_GUARDED and prod.policy.guarded == ()


def test_an_explicit_empty_guarded_opts_the_last_stage_out(tmp_path: Path) -> None:
    config = make(tmp_path, "[projects.p.stages.prod]\nguarded = []\n")
    prod = load_catalog(config).projects["p"].stages[-1]
    assert prod.policy.guarded == () and prod.policy.approvals == 0


def test_guarding_an_earlier_stage_needs_one_approval_by_default(tmp_path: Path) -> None:
    config = make(tmp_path, '[projects.p.stages.dev]\nguarded = ["deploy"]\n')
    dev = load_catalog(config).projects["p"].stages[0]
    assert dev.policy.guarded == ("deploy",) and dev.policy.approvals == 1


def test_a_valid_policy_reads_as_written(tmp_path: Path) -> None:
    config = make(
        tmp_path,
        '[projects.p.stages.prod]\napprovals = 2\napprover_role = "admin"\n'
        'guarded = ["deploy"]\nrollback_on_failure = false\nfail_fast = true\n'
        'approval_expires = "2h"\n',
    )
    policy = load_catalog(config).projects["p"].stages[-1].policy
    assert (policy.approvals, policy.approver_role, policy.guarded) == (2, "admin", ("deploy",))
    assert policy.rollback_on_failure is False and policy.fail_fast is True


def test_the_registry_guards_only_verbs_a_policy_may_name() -> None:
    guardable = {c.policy_verb for c in build_registry().commands.values() if c.guardable}
    assert guardable  # deploy and rollback at least
    assert guardable <= set(GUARDABLE_VERBS)
    assert set(DEFAULT_GUARDED) <= set(GUARDABLE_VERBS)


def test_the_roles_a_policy_may_name_are_the_command_layers_roles() -> None:
    from bot.projects import APPROVER_ROLES

    assert set(APPROVER_ROLES) <= {r.name for r in Role}
    assert {r.name for r in Role if r >= Role.approver} <= set(APPROVER_ROLES)


# --- one Fly app, one stage (issue 8 point 4, the catalog's half) ---


def test_two_stages_naming_one_app_are_refused(tmp_path: Path) -> None:
    config = make(tmp_path, "")
    (tmp_path / "p" / "prod.fly.toml").write_text('app = "p-dev"\n')
    with pytest.raises(ConfigError) as raised:
        load_catalog(config)
    message = str(raised.value)
    assert "p-dev" in message and "p/dev" in message and "p/prod" in message
    assert str(tmp_path / "p" / "prod.fly.toml") in message


def test_two_projects_naming_one_app_are_refused(tmp_path: Path) -> None:
    config = make(tmp_path, "")
    other = tmp_path / "q"
    other.mkdir()
    (other / "fly.toml").write_text('app = "p-prod"\n')
    q = '\n[projects.q]\npath = "q"\n[projects.q.stages.dev]\nguarded = []\n'
    config.write_text(config.read_text() + q)
    with pytest.raises(ConfigError, match=r"p/prod and q/dev both name the Fly app 'p-prod'"):
        load_catalog(config)
