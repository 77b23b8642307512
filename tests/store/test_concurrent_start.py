"""Several instances starting at once on one database: migrations and the catalog mirror run
one process at a time (an advisory lock on PostgreSQL, a file lock beside a SQLite file), and
the mirror is an upsert in which each flybot.toml replaces only what it wrote itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlmodel import select

from bot.projects import load_catalog, sync_catalog
from bot.store import make_engine, upgrade
from bot.store.engine import session_scope
from bot.store.migrate import alembic_config, current_revision
from bot.store.models import ProjectRow, StageRow
from tests.support import REPO

STARTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bot.runtime import build_services
    from bot.settings import Settings
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    build_services(Settings(database_url=sys.argv[1], config_path=Path(sys.argv[2])))
    print("started")
    """
)


def write_config(root: Path, name: str, projects: dict[str, tuple[str, ...]]) -> Path:
    """A flybot.toml in root/name listing `projects`, each with these stages."""
    folder = root / name
    text = ""
    for project, stages in projects.items():
        (folder / project).mkdir(parents=True, exist_ok=True)
        for stage in stages:
            file = "fly.toml" if stage == "dev" else f"{stage}.fly.toml"
            (folder / project / file).write_text(f'app = "{project}-{stage}"\n')
        text += f'[projects.{project}]\npath = "{project}"\n'
    config = folder / "flybot.toml"
    config.write_text(text)
    return config


def mirrored(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    with session_scope(engine) as session:
        projects = [p.name for p in session.exec(select(ProjectRow))]
        stages = list(session.exec(select(StageRow)))
    engine.dispose()
    return {p: sorted(s.name for s in stages if s.project == p) for p in sorted(projects)}


def start_together(
    url: str, configs: list[Path], root: Path
) -> list[subprocess.CompletedProcess[str]]:
    go = root / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, url, str(config), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
        )
        for config in configs
    ]
    time.sleep(3)  # let every process import and wait at the line; the go file releases them
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=90)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def last_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "Error" in line]
    return (errors or stderr.splitlines() or ["?"])[-1][:300]


def check_started_together(url: str, tmp_path: Path) -> None:
    one = write_config(tmp_path, "one", {"shop": ("dev", "prod"), "blog": ("dev", "prod")})
    two = write_config(tmp_path, "two", {"api": ("dev", "staging", "prod")})
    results = start_together(url, [one, two, one, two, one, two], tmp_path)
    failures = [last_error(r.stderr) for r in results if r.returncode != 0]
    assert failures == [], failures
    head = alembic_config(make_engine(url))
    from alembic.script import ScriptDirectory

    head_revision = ScriptDirectory.from_config(head).get_current_head()
    assert current_revision(make_engine(url)) == head_revision
    # Neither file's projects overwrote the other's.
    assert mirrored(url) == {
        "api": ["dev", "prod", "staging"],
        "blog": ["dev", "prod"],
        "shop": ["dev", "prod"],
    }


def test_six_instances_with_two_configs_start_together_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    check_started_together(postgres_url, tmp_path)


def test_six_instances_with_two_configs_start_together_on_one_sqlite_file(tmp_path: Path) -> None:
    check_started_together(f"sqlite:///{tmp_path / 'flybot.db'}", tmp_path)


def test_the_mirror_is_an_upsert_and_each_file_replaces_only_its_own_rows(
    tmp_path: Path, database_url: str
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    one = write_config(tmp_path, "one", {"shop": ("dev", "prod"), "blog": ("dev", "prod")})
    two = write_config(tmp_path, "two", {"api": ("dev", "prod")})
    sync_catalog(engine, load_catalog(one), source=str(one))
    with session_scope(engine) as session:
        ids = {(s.project, s.name): s.id for s in session.exec(select(StageRow))}
    sync_catalog(engine, load_catalog(two), source=str(two))
    sync_catalog(engine, load_catalog(one), source=str(one))
    with session_scope(engine) as session:
        again = {(s.project, s.name): s.id for s in session.exec(select(StageRow))}
    # Rows are updated in place, not deleted and inserted again.
    assert {k: v for k, v in again.items() if k[0] != "api"} == ids
    assert mirrored(database_url) == {
        "api": ["dev", "prod"],
        "blog": ["dev", "prod"],
        "shop": ["dev", "prod"],
    }
    # A project (or stage) removed from a file disappears at that file's next sync only.
    write_config(tmp_path, "one", {"shop": ("dev",)})
    (one.parent / "shop" / "prod.fly.toml").unlink()
    sync_catalog(engine, load_catalog(one), source=str(one))
    assert mirrored(database_url) == {"api": ["dev", "prod"], "shop": ["dev"]}
    engine.dispose()
