"""flybot.toml and the fly.toml files of each stage."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.projects import ConfigError, load_catalog
from bot.settings import Settings, SettingsError
from tests.support import REPO


def test_the_example_project_has_dev_before_prod_and_prod_is_guarded() -> None:
    catalog = load_catalog(REPO / "examples" / "flybot.toml")
    project = catalog.projects["ping-go"]
    assert project.stage_names == ["dev", "prod"]
    dev, prod = project.stages
    assert (dev.app, prod.app) == ("ping-go-dev", "ping-go-prod")
    assert dev.policy.guarded == () and dev.policy.approvals == 0
    assert prod.policy.guarded == ("deploy", "rollback", "scale", "secrets")
    assert prod.policy.approvals == 1
    assert prod.policy.approval_expires == timedelta(minutes=30)


def make(tmp_path: Path, flybot: str, files: dict[str, str]) -> Path:
    folder = tmp_path / "p"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    config = tmp_path / "flybot.toml"
    config.write_text(flybot)
    return config


@pytest.mark.parametrize(
    ("flybot", "files", "message"),
    [
        ('[projects.p]\npath = "p"\n', {"fly.toml": 'app = "a"\n[env\n'}, "fly.toml, line 2"),
        (
            '[projects.p]\npath = "p"\n',
            {"fly.toml": 'primary_region = "nrt"\n'},
            "the key 'app' is missing",
        ),
        ("[projects.p]\n", {"fly.toml": 'app = "a"\n'}, "the key 'path'"),
        ('[projects.p]\npath = "nope"\n', {"fly.toml": 'app = "a"\n'}, "is not a folder"),
        (
            '[projects.p]\npath = "p"\n[projects.p.stages.prod]\napprovals = 1\n',
            {"fly.toml": 'app = "a"\n'},
            "stage 'prod' has no prod.fly.toml",
        ),
        (
            '[projects.p]\npath = "p"\n[projects.p.stages.dev]\napprovls = 1\n',
            {"fly.toml": 'app = "a"\n'},
            "unknown key 'approvls'",
        ),
        (
            '[projects.p]\npath = "p"\n[projects.p.stages.dev]\napproval_expires = "soon"\n',
            {"fly.toml": 'app = "a"\n'},
            "'approval_expires'",
        ),
        ('[projects.P_Q]\npath = "p"\n', {"fly.toml": 'app = "a"\n'}, "lowercase"),
        ("[projects.p\n", {}, "flybot.toml, line 1"),
    ],
)
def test_malformed_configuration_names_the_file_and_what_is_wrong(
    tmp_path: Path, flybot: str, files: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_catalog(make(tmp_path, flybot, files))


def test_settings_come_from_the_environment_and_hide_tokens(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "FLYBOT_DATABASE_URL": "sqlite:///x.db",
            "FLY_API_TOKEN": "fm2_s3cret",
            "FLYBOT_ADMINS": "slack:T1:U1, discord:2:3",
            "FLY_FLAPS_BASE_URL": "http://127.0.0.1:9/",
        }
    )
    assert settings.admins == ("slack:T1:U1", "discord:2:3")
    assert settings.fly_flaps_base_url == "http://127.0.0.1:9"
    assert "fm2_s3cret" not in repr(settings)
    with pytest.raises(SettingsError, match="FLYBOT_ADMINS entry 'alice'"):
        Settings.from_env({"FLYBOT_ADMINS": "alice"})
    with pytest.raises(SettingsError, match="not a file"):
        Settings.from_env({"FLYBOT_CONFIG": str(tmp_path / "missing.toml")})


def test_projects_and_stages_are_mirrored_into_the_database(tmp_path: Path) -> None:
    import json

    from sqlmodel import select

    from bot.runtime import build_services
    from bot.store.engine import session_scope
    from bot.store.models import ProjectRow, StageRow

    url = f"sqlite:///{tmp_path / 'db'}"
    services = build_services(
        Settings(database_url=url, config_path=REPO / "examples" / "flybot.toml")
    )
    with session_scope(services.engine) as session:
        assert [p.name for p in session.exec(select(ProjectRow))] == ["ping-go"]
        stages = {s.name: s for s in session.exec(select(StageRow))}
    assert stages["prod"].app == "ping-go-prod" and stages["dev"].position == 0
    assert json.loads(stages["prod"].policy_json)["approvals"] == 1
    # A project removed from flybot.toml disappears at the next start.
    (tmp_path / "ping-go").mkdir()
    config = tmp_path / "flybot.toml"
    config.write_text('[projects.ping-go]\npath = "ping-go"\n')
    for name in ("fly.toml", "prod.fly.toml"):
        source = REPO / "examples" / "ping-go" / name
        (tmp_path / "ping-go" / name).write_text(source.read_text())
    build_services(Settings(database_url=url, config_path=config))
    config.write_text("")
    services = build_services(Settings(database_url=url, config_path=config))
    with session_scope(services.engine) as session:
        assert list(session.exec(select(ProjectRow))) == []
        assert list(session.exec(select(StageRow))) == []


def test_flybot_db_upgrade_applies_the_migrations(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "FLYBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"database at revision \d{4}", result.stdout.strip()), result.stdout
