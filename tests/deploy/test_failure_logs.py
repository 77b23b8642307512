"""A failed deploy shows, in its thread, the failing machine's last log lines with its exit
code and whether it was OOM-killed — a failed check, a crash loop, an OOM kill, a failed
release command — against the Fly simulator over HTTP; and reading them never changes how a
deploy ends."""

from __future__ import annotations

from pathlib import Path

from commands.port import Reply
from tests.deploy.test_engine import releases
from tests.flyharness import BROKEN, CRASHLOOP, NEW, OLD, World, world

OOM = "registry.fly.io/shop:v2-oom"


async def deploy(w: World, line: str) -> list[Reply]:
    outcome, conversation = await w.bot.run("alice", line)
    await w.services.jobs.wait_all()
    assert outcome.status == "ok", conversation.all_text()
    [thread] = conversation.threads.values()
    return thread


def log_block(thread: list[Reply]) -> Reply:
    blocks = [r for r in thread if r.code]
    assert len(blocks) == 1, [r.plain() for r in thread]
    return blocks[0]


async def test_a_broken_deploy_shows_the_failing_health_endpoint_in_the_thread(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        thread = await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "rolled_back"
        block = log_block(thread)
        failing = release.error.split("machine ", 1)[1].split(" ", 1)[0]
        assert block.text.startswith(f"Last {len(block.code)} log line(s) of {failing}")
        assert "no exit: the machine still runs" in block.text
        assert 0 < len(block.code) <= 20
        assert all(f" {failing} " in line for line in block.code)
        assert any("GET /healthz 500 Internal Server Error" in line for line in block.code)
        text = "\n".join(r.plain() for r in thread)
        # in order: the failure, its logs, then the rollback
        assert text.index("not healthy within") < text.index("/healthz 500")
        assert text.index("/healthz 500") < text.index(f"back on {OLD}")


async def test_a_crashloop_deploy_shows_the_stack_trace_and_exit_code(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        thread = await deploy(w, f"deploy shop staging {CRASHLOOP}")
        [release] = releases(w)
        assert release.state == "rolled_back" and "crash-looping" in release.error
        block = log_block(thread)
        assert "exit code 1, not OOM-killed" in block.text
        assert any("panic: runtime error" in line for line in block.code)
        assert any("Main child exited normally with code: 1" in line for line in block.code)
        assert len(block.code) <= 20


async def test_an_oom_killed_machine_says_so(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        thread = await deploy(w, f"deploy shop staging {OOM}")
        block = log_block(thread)
        assert "exit code 137, OOM-killed" in block.text
        assert any("Out of memory: Killed process" in line for line in block.code)


async def test_a_failed_release_command_shows_its_output_and_exit_code(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        staging = w.root / "shop" / "staging.fly.toml"
        staging.write_text(
            staging.read_text().replace(
                "[deploy]\n", '[deploy]\n  release_command = "/app/shop migrate --fail"\n'
            )
        )
        thread = await deploy(w, f"deploy shop staging {NEW}")
        [release] = releases(w)
        assert release.state == "failed" and "release command exited with code 1" in release.error
        block = log_block(thread)
        assert "exit code 1, not OOM-killed" in block.text
        assert any("migration 0042_add_orders failed" in line for line in block.code)
        assert any("`/app/shop migrate --fail`" in line for line in block.code)
        assert w.calls("Machines_update") == []  # no machine was changed


async def test_a_good_deploy_posts_no_logs(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        thread = await deploy(w, f"deploy shop staging {NEW}")
        assert [r for r in thread if r.code] == []
        assert w.calls("Logs_list") == []


async def test_logs_fly_cannot_give_never_change_how_the_deploy_ends(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.inject("Logs_list", status=500)
        w.sim.inject("Machines_list_events", status=500)
        thread = await deploy(w, f"deploy shop staging {CRASHLOOP}")
        [release] = releases(w)
        assert release.state == "rolled_back"  # as without the faults
        text = "\n".join(r.plain() for r in thread)
        assert "logs unavailable (500" in text
        assert f"back on {OLD}" in text


async def test_a_thread_that_cannot_take_the_logs_never_stops_the_rollback(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        outbox = w.services.router.outbox("shell")
        real = outbox.post_in_thread

        async def refuse_code(thread, reply):  # type: ignore[no-untyped-def]
            if reply.code:
                raise RuntimeError("chat is down for blocks")
            return await real(thread, reply)

        outbox.post_in_thread = refuse_code  # type: ignore[method-assign]
        thread = await deploy(w, f"deploy shop staging {BROKEN}")
        [release] = releases(w)
        assert release.state == "rolled_back"
        assert f"back on {OLD}" in "\n".join(r.plain() for r in thread)
