"""Projects and stages: flybot.toml plus each project's folder of fly.toml files.

`fly.toml` is the `dev` stage and `<stage>.fly.toml` any other; each file's `app` names the
stage's Fly app. flybot.toml gives the folder, the stage order and each stage's policy.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomlkit
from sqlalchemy.engine import Engine
from sqlmodel import select
from tomlkit.exceptions import ParseError

from bot.durations import parse_duration
from bot.freeze import FreezeWindow
from bot.store.engine import session_scope
from bot.store.models import ProjectRow, StageRow
from bot.store.startup import exclusive
from bot.usage.config import UsageConfig, parse_usage

# The verbs a stage's `guarded` list may name: every verb the command layer declares
# guardable is one of these (a test holds the registry to it), so a typo such as "Deploy"
# is refused at load instead of guarding nothing.
GUARDABLE_VERBS = ("deploy", "rollback", "restart", "scale", "secrets", "certs")
# What the production end of a project (the last stage in its order) guards unless its
# policy says otherwise; `guarded = []` opts out.
DEFAULT_GUARDED = ("deploy", "rollback", "scale", "secrets")
# Roles a stage may require of its approvers. A viewer may not approve: approving a change
# is more than reading.
APPROVER_ROLES = ("deployer", "approver", "admin")
POLICY_KEYS = (
    "approval_expires",
    "approvals",
    "approver_role",
    "fail_fast",
    "freeze",
    "guarded",
    "rollback_on_failure",
    "secrets",
)
PROJECT_KEYS = ("order", "path", "stages")
TOP_LEVEL_KEYS = ("admins", "projects", "usage")
log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


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
    fail_fast: bool = False  # a machine whose checks stay critical fails before wait_timeout
    secrets: tuple[str, ...] = ()  # secret names the app needs: `/fly launch` sets them first

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
    source: str = ""  # the flybot.toml it was read from, resolved ("" for none)
    usage: UsageConfig = field(default_factory=UsageConfig)  # allowances, prices, thresholds

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


def _unknown_keys(raw: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; keys: {', '.join(known)}.")


def _flag(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true or false, not {_shown(value)}.")
    return value


def _shown(value: Any) -> str:
    """A value as it was written in TOML, for an error line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _guarded(raw: dict[str, Any], default: tuple[str, ...], where: str) -> tuple[str, ...]:
    if "guarded" not in raw:
        return default
    value = raw["guarded"]
    allowed = ", ".join(GUARDABLE_VERBS)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{where}: 'guarded' must be a list of verbs, e.g. [\"deploy\"], not "
            f"{_shown(value)}; verbs: {allowed}."
        )
    for verb in value:
        if verb not in GUARDABLE_VERBS:
            raise ConfigError(f"{where}: 'guarded': unknown verb '{verb}'; verbs: {allowed}.")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: 'guarded' names a verb twice.")
    return tuple(value)


def _policy(raw: Any, production_end: bool, where: str) -> StagePolicy:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table of policy keys: {', '.join(POLICY_KEYS)}.")
    _unknown_keys(raw, POLICY_KEYS, where)
    guarded = _guarded(raw, DEFAULT_GUARDED if production_end else (), where)
    approvals = raw.get("approvals", 1 if guarded else 0)
    if isinstance(approvals, bool) or not isinstance(approvals, int) or approvals < 0:
        raise ConfigError(
            f"{where}: 'approvals' must be a whole number of at least 0 (distinct approvers "
            f"needed), not {_shown(approvals)}."
        )
    if guarded and approvals == 0:
        raise ConfigError(
            f"{where}: 'approvals' = 0 guards nothing, yet 'guarded' lists "
            f"{', '.join(guarded)}; need at least 1 approval, or write guarded = [] to guard "
            "nothing here."
        )
    if approvals and not guarded:
        raise ConfigError(
            f"{where}: 'approvals' = {approvals} but no verb is guarded here; list the verbs "
            f"that need approval in 'guarded' (verbs: {', '.join(GUARDABLE_VERBS)})."
        )
    role = raw.get("approver_role", "approver")
    if role not in APPROVER_ROLES:
        raise ConfigError(
            f"{where}: 'approver_role': unknown role {_shown(role)}; roles that may approve: "
            f"{', '.join(APPROVER_ROLES)}."
        )
    expires = StagePolicy.approval_expires
    if "approval_expires" in raw:
        expires_raw = raw["approval_expires"]
        if not isinstance(expires_raw, str):
            raise ConfigError(
                f"{where}: 'approval_expires' must be a duration in quotes such as \"30m\", "
                f"not {_shown(expires_raw)}."
            )
        try:
            expires = parse_duration(expires_raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: 'approval_expires': {exc}") from None
    freeze = raw.get("freeze", [])
    if not isinstance(freeze, list):
        raise ConfigError(
            f"{where}: 'freeze' must be a list of windows, e.g. "
            f'["Fri 16:00-Mon 08:00 Asia/Seoul"], not {_shown(freeze)}.'
        )
    for window in freeze:
        try:
            if not isinstance(window, str):
                raise ValueError(
                    f"{_shown(window)} is not a freeze window; write e.g. "
                    '"Fri 16:00-Mon 08:00 Asia/Seoul".'
                )
            FreezeWindow.parse(window)
        except ValueError as exc:
            raise ConfigError(f"{where}: 'freeze': {exc}") from None
    secrets = raw.get("secrets", [])
    if not isinstance(secrets, list) or not all(
        isinstance(n, str) and _SECRET_NAME.match(n) for n in secrets
    ):
        raise ConfigError(
            f"{where}: 'secrets' must be a list of secret names, e.g. [\"DATABASE_URL\"], not "
            f"{_shown(secrets)}."
        )
    if len(set(secrets)) != len(secrets):
        raise ConfigError(f"{where}: 'secrets' names a secret twice.")
    return StagePolicy(
        approvals=approvals,
        approver_role=role,
        guarded=guarded,
        approval_expires=expires,
        freeze=tuple(freeze),
        rollback_on_failure=_flag(raw, "rollback_on_failure", True, where),
        fail_fast=_flag(raw, "fail_fast", False, where),
        secrets=tuple(secrets),
    )


def _default_order(names: list[str], where: str) -> list[str]:
    """dev first, prod last, the others between by name. With no `prod` and more than one
    other stage, which is the production end is a guess: the user must say, with `order`."""
    middle = sorted(n for n in names if n not in ("dev", "prod"))
    if "prod" not in names and len(middle) > 1:
        raise ConfigError(
            f"{where}: 'order' is needed: with no prod stage, flybot cannot tell which of "
            f"{', '.join(middle)} is the production end (the last stage, guarded by default); "
            f"write e.g. order = [{', '.join(repr(n) for n in ['dev', *middle] if n in names)}]."
        )
    return [n for n in ("dev",) if n in names] + middle + [n for n in ("prod",) if n in names]


def _order(raw: dict[str, Any], files: dict[str, Path], folder: Path, where: str) -> list[str]:
    if "order" not in raw:
        return _default_order(sorted(files), where)
    order = raw["order"]
    have = ", ".join(sorted(files))
    if not isinstance(order, list) or not order or not all(isinstance(s, str) for s in order):
        raise ConfigError(
            f"{where}: 'order' must be a list of stage names, first to last, not "
            f"{_shown(order)}; stages: {have}."
        )
    for stage_name in order:
        if stage_name not in files:
            raise ConfigError(
                f"{where}: 'order' names stage '{stage_name}', which has no "
                f"{stage_name}.fly.toml in {folder}; stages: {have}."
            )
    if len(set(order)) != len(order):
        raise ConfigError(f"{where}: 'order' names a stage twice; stages: {have}.")
    return list(order)


def load_catalog(config_path: Path | None) -> Catalog:
    """Read flybot.toml and every project's fly.toml files. Raises ConfigError (one line
    naming the file, the key and what is allowed) when anything is malformed."""
    if config_path is None:
        return Catalog()
    data = read_toml(config_path)
    _unknown_keys(data, TOP_LEVEL_KEYS, str(config_path))
    base = config_path.parent
    admins = data.get("admins", [])
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
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
        _unknown_keys(raw, PROJECT_KEYS, where)
        folder = (base / raw["path"]).resolve()
        if not folder.is_dir():
            raise ConfigError(f"{where}: path '{raw['path']}' is not a folder.")
        files: dict[str, Path] = {}
        for file in sorted(folder.glob("*fly.toml")):
            stage_name = stage_name_of(file)
            if stage_name is not None:
                files[stage_name] = file
        if not files:
            raise ConfigError(f"{where}: no fly.toml or <stage>.fly.toml in {folder}.")
        raw_stages = raw.get("stages", {})
        if not isinstance(raw_stages, dict):
            raise ConfigError(f"{where}: 'stages' must be a table of [projects.{name}.stages.X].")
        for stage_name in raw_stages:
            if stage_name not in files:
                raise ConfigError(
                    f"{where}: stage '{stage_name}' has no {stage_name}.fly.toml in {folder}."
                )
        order = _order(raw, files, folder, where)
        for stage_name in raw_stages:
            if stage_name not in order:
                raise ConfigError(
                    f"{config_path}: [projects.{name}.stages.{stage_name}]: stage "
                    f"'{stage_name}' is not in 'order' ({', '.join(order)}); add it there or "
                    "remove its policy."
                )
        stages = tuple(
            Stage(
                project=name,
                name=stage_name,
                position=position,
                app=read_app_name(files[stage_name]),
                config_file=files[stage_name],
                policy=_policy(
                    raw_stages.get(stage_name, {}),
                    position == len(order) - 1,
                    f"{config_path}: [projects.{name}.stages.{stage_name}]",
                ),
            )
            for position, stage_name in enumerate(order)
        )
        projects[name] = Project(name=name, path=folder, stages=stages)
    try:
        usage = parse_usage(data.get("usage", {}), f"{config_path}: [usage]")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    catalog = Catalog(
        projects=projects, admins=tuple(admins), source=str(config_path.resolve()), usage=usage
    )
    _one_stage_per_app(catalog)
    return catalog


def _one_stage_per_app(catalog: Catalog) -> None:
    """Grants, locks and approvals are keyed on project/stage, and a deploy goes to its
    stage's app: two stages naming one app would let a grant on one reach the other."""
    seen: dict[str, Stage] = {}
    for project in catalog.projects.values():
        for stage in project.stages:
            first = seen.setdefault(stage.app, stage)
            if first is not stage:
                raise ConfigError(
                    f"{stage.config_file}: {first.project}/{first.name} and "
                    f"{stage.project}/{stage.name} both name the Fly app '{stage.app}' "
                    f"(in {first.config_file} and {stage.config_file}); each stage needs an "
                    "app of its own."
                )


def sync_catalog(engine: Engine, catalog: Catalog, source: str | None = None) -> None:
    """Mirror the catalog into the database, so every bot instance and the audit log agree.

    An upsert, one instance at a time: rows are updated in place, and a sync removes only the
    rows its own flybot.toml (`source`, by default the catalog's file) wrote before and no
    longer lists, so instances started with different files never delete each other's
    projects. Rows from before sources were recorded (source "") count as anyone's."""
    source = catalog.source if source is None else source
    with exclusive(engine, "catalog"), session_scope(engine) as session:
        stages = {(s.project, s.name): s for s in session.exec(select(StageRow))}
        projects = {p.name: p for p in session.exec(select(ProjectRow))}
        for project in catalog.projects.values():
            row = projects.get(project.name)
            if row is None:
                row = ProjectRow(name=project.name, path=str(project.path), source=source)
            else:
                row.path, row.source = str(project.path), source
            session.add(row)
        session.flush()
        for project in catalog.projects.values():
            for stage in project.stages:
                policy_json = stage.policy.to_json()
                stage_row = stages.get((project.name, stage.name))
                if stage_row is None:
                    stage_row = StageRow(project=project.name, name=stage.name)
                elif stage_row.source not in ("", source) and (
                    stage_row.app != stage.app or stage_row.policy_json != policy_json
                ):
                    log.warning(
                        "%s/%s is defined differently by %s and %s (app %s / %s); the "
                        "instances using them do not enforce the same policy",
                        project.name,
                        stage.name,
                        stage_row.source,
                        source,
                        stage_row.app,
                        stage.app,
                    )
                stage_row.position = stage.position
                stage_row.app = stage.app
                stage_row.config_file = str(stage.config_file)
                stage_row.policy_json = policy_json
                stage_row.source = source
                session.add(stage_row)
        listed = {(p.name, s.name) for p in catalog.projects.values() for s in p.stages}
        for key, old_row in stages.items():
            if key not in listed and old_row.source in ("", source):
                session.delete(old_row)
        session.flush()
        still_staged = {s.project for s in session.exec(select(StageRow))}
        for name, project_row in projects.items():
            if (
                name not in catalog.projects
                and name not in still_staged
                and project_row.source in ("", source)
            ):
                session.delete(project_row)
