"""Projects and stages: flybot.toml plus each project's folder of fly.toml files.

`fly.toml` is the `dev` stage and `<stage>.fly.toml` any other; each file's `app` names the
stage's Fly app. flybot.toml gives the folder, the stage order and each stage's policy.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomlkit
from sqlalchemy.engine import Engine
from sqlmodel import delete, select
from tomlkit.exceptions import ParseError

from bot.durations import parse_duration
from bot.freeze import FreezeWindow
from bot.store.engine import session_scope
from bot.store.models import ProjectRow, StageRow

DEFAULT_GUARDED_IN_PROD = ("deploy", "rollback", "scale", "secrets")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ConfigError(Exception):
    """flybot.toml or a fly.toml is malformed; the text names the file, line and key."""


@dataclass(frozen=True)
class StagePolicy:
    approvals: int = 0
    approver_role: str = "approver"
    guarded: tuple[str, ...] = ()
    approval_expires: timedelta = timedelta(minutes=30)
    freeze: tuple[str, ...] = ()
    rollback_on_failure: bool = True

    def to_json(self) -> str:
        data = asdict(self)
        data["approval_expires"] = int(self.approval_expires.total_seconds())
        return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class Stage:
    project: str
    name: str
    position: int
    app: str
    config_file: Path
    policy: StagePolicy


@dataclass(frozen=True)
class Project:
    name: str
    path: Path
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


@dataclass(frozen=True)
class Catalog:
    projects: dict[str, Project] = field(default_factory=dict)
    admins: tuple[str, ...] = ()

    def project(self, name: str) -> Project | None:
        return self.projects.get(name)


def stage_name_of(file: Path) -> str | None:
    if file.name == "fly.toml":
        return "dev"
    if file.name.endswith(".fly.toml"):
        return file.name[: -len(".fly.toml")]
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    try:
        return tomlkit.parse(text).unwrap()
    except ParseError as exc:
        raise ConfigError(f"{path}, line {exc.line}, column {exc.col}: {_reason(exc)}") from None


def _reason(exc: ParseError) -> str:
    # ParseError's str() repeats the position; keep only the description.
    return str(exc).split(" at line ")[0]


def read_app_name(path: Path) -> str:
    data = read_toml(path)
    app = data.get("app")
    if not isinstance(app, str) or not app.strip():
        raise ConfigError(
            f"{path}: the key 'app' is missing or empty; it names the stage's Fly app."
        )
    return app.strip()


def _policy(stage: str, raw: dict[str, Any], where: str) -> StagePolicy:
    defaults = (
        StagePolicy(approvals=1, guarded=DEFAULT_GUARDED_IN_PROD)
        if stage == "prod"
        else StagePolicy()
    )
    known = {
        "approvals",
        "approver_role",
        "guarded",
        "approval_expires",
        "freeze",
        "rollback_on_failure",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{sorted(unknown)[0]}'; keys: {', '.join(sorted(known))}."
        )
    approvals = raw.get("approvals", defaults.approvals)
    if not isinstance(approvals, int) or approvals < 0:
        raise ConfigError(f"{where}: 'approvals' must be a whole number of at least 0.")
    guarded = raw.get("guarded", list(defaults.guarded))
    if not isinstance(guarded, list) or not all(isinstance(v, str) for v in guarded):
        raise ConfigError(f"{where}: 'guarded' must be a list of verbs, e.g. [\"deploy\"].")
    expires_raw = raw.get("approval_expires")
    try:
        expires = parse_duration(expires_raw) if expires_raw else defaults.approval_expires
    except ValueError as exc:
        raise ConfigError(f"{where}: 'approval_expires': {exc}") from None
    freeze = raw.get("freeze", [])
    if not isinstance(freeze, list):
        raise ConfigError(f"{where}: 'freeze' must be a list of windows.")
    for window in freeze:
        try:
            FreezeWindow.parse(str(window))
        except ValueError as exc:
            raise ConfigError(f"{where}: 'freeze': {exc}") from None
    return StagePolicy(
        approvals=approvals,
        approver_role=str(raw.get("approver_role", defaults.approver_role)),
        guarded=tuple(guarded),
        approval_expires=expires,
        freeze=tuple(str(f) for f in freeze),
        rollback_on_failure=bool(raw.get("rollback_on_failure", True)),
    )


def _stage_order(names: list[str]) -> list[str]:
    def rank(name: str) -> tuple[int, str]:
        return (0 if name == "dev" else 2 if name == "prod" else 1, name)

    return sorted(names, key=rank)


def load_catalog(config_path: Path | None) -> Catalog:
    """Read flybot.toml and every project's fly.toml files. Raises ConfigError when malformed."""
    if config_path is None:
        return Catalog()
    data = read_toml(config_path)
    base = config_path.parent
    admins = data.get("admins", [])
    if not isinstance(admins, list):
        raise ConfigError(f"{config_path}: 'admins' must be a list of platform:workspace:user.")
    projects: dict[str, Project] = {}
    raw_projects = data.get("projects", {})
    if not isinstance(raw_projects, dict):
        raise ConfigError(f"{config_path}: 'projects' must be a table of [projects.NAME].")
    for name, raw in raw_projects.items():
        where = f"{config_path}: [projects.{name}]"
        if not _NAME.match(name):
            raise ConfigError(f"{where}: project names are lowercase letters, digits and dashes.")
        if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
            raise ConfigError(
                f"{where}: the key 'path' (the folder of its fly.toml files) is missing."
            )
        folder = (base / raw["path"]).resolve()
        if not folder.is_dir():
            raise ConfigError(f"{where}: path '{raw['path']}' is not a folder.")
        files = {stage_name_of(f): f for f in sorted(folder.glob("*fly.toml"))}
        files.pop(None, None)
        if not files:
            raise ConfigError(f"{where}: no fly.toml or <stage>.fly.toml in {folder}.")
        raw_stages = raw.get("stages", {})
        for stage_name in raw_stages:
            if stage_name not in files:
                raise ConfigError(
                    f"{where}: stage '{stage_name}' has no {stage_name}.fly.toml in {folder}."
                )
        order = raw.get("order") or _stage_order([s for s in files if s])
        stages = tuple(
            Stage(
                project=name,
                name=stage_name,
                position=position,
                app=read_app_name(files[stage_name]),
                config_file=files[stage_name],
                policy=_policy(
                    stage_name,
                    raw_stages.get(stage_name, {}),
                    f"{where.rstrip(']')}.stages.{stage_name}]",
                ),
            )
            for position, stage_name in enumerate(order)
            if stage_name is not None
        )
        projects[name] = Project(name=name, path=folder, stages=stages)
    return Catalog(projects=projects, admins=tuple(str(a) for a in admins))


def sync_catalog(engine: Engine, catalog: Catalog) -> None:
    """Mirror the catalog into the database, so every bot instance and the audit log agree."""
    with session_scope(engine) as session:
        session.exec(delete(StageRow))
        existing = {p.name for p in session.exec(select(ProjectRow))}
        for gone in existing - set(catalog.projects):
            row = session.get(ProjectRow, gone)
            if row is not None:
                session.delete(row)
        session.flush()
        for project in catalog.projects.values():
            session.merge(ProjectRow(name=project.name, path=str(project.path)))
            session.flush()
            for stage in project.stages:
                session.add(
                    StageRow(
                        project=project.name,
                        name=stage.name,
                        position=stage.position,
                        app=stage.app,
                        config_file=str(stage.config_file),
                        policy_json=stage.policy.to_json(),
                    )
                )
