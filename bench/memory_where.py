"""Where `flybot run`'s memory goes: bench/memory.py's scenario (Slack HTTP mode, Discord
connected, the scheduler, a 12-machine deploy) with flybot started through bench/_traced.py,
tracemalloc on from the interpreter's start. Prints:

- what loading each module cost (its own bytes, nested imports apart), summed by package,
  flybot's own packages (bot, commands, adapters) by module;
- live memory at idle by package (where the allocating line is);
- what grew from idle to after the first deploy, and from then to after the last (the
  image back and forth: what each further deploy leaves behind), module loads apart, by the
  allocating line and by the innermost line of flybot's own code on its stack.

Traced bytes are Python's allocations, not RSS: the gap is the allocator's (arenas, free
lists, fragmentation) and C libraries' own mallocs that bypass Python's.

    python bench/memory_where.py [--frames 12] [--top 25] [--fresh-database] [--deploys 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import tracemalloc
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from memory import FLOOR_IMPORTS, memory_kb, scenario  # noqa: E402

OURS = ("bot", "commands", "adapters")
STDLIB = sysconfig.get_paths()["stdlib"]


def package_of(filename: str) -> str:
    """A top-level package name for a source file: site-packages' and the repository's by
    their folder, the standard library's as `stdlib`, flybot's own to two levels."""
    if "site-packages/" in filename:
        rest = filename.split("site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    if filename.startswith(str(REPO) + "/"):
        parts = filename[len(str(REPO)) + 1 :].split("/")
        if parts[0] in OURS and len(parts) > 1:
            return ".".join([parts[0], parts[1].removesuffix(".py")])
        return parts[0]
    if filename.startswith(STDLIB) or filename.startswith("<frozen"):
        return "stdlib"
    return filename


def module_package(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] in OURS and len(parts) > 1 else parts[0]


def mb(size: float) -> str:
    return f"{size / 1024 / 1024:7.2f} MB"


def report_imports(costs: dict[str, int], top: int) -> None:
    by_package: dict[str, int] = defaultdict(int)
    for name, size in costs.items():
        by_package[module_package(name)] += size
    ours = sum(size for name, size in costs.items() if name.split(".")[0] in OURS)
    print(f"\nmodule loads: {mb(sum(costs.values()))} in all, flybot's own {mb(ours)}")
    print("  by package (top-level; flybot's to two levels):")
    for name, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {mb(size)}  {name}")
    print("  flybot's own modules, largest:")
    mine = [(n, s) for n, s in costs.items() if n.split(".")[0] in OURS]
    for name, size in sorted(mine, key=lambda kv: -kv[1])[:top]:
        print(f"    {mb(size)}  {name}")


def report_live(snapshot: tracemalloc.Snapshot, top: int) -> None:
    by_package: dict[str, int] = defaultdict(int)
    for stat in snapshot.statistics("filename"):
        by_package[package_of(stat.traceback[0].filename)] += stat.size
    print(
        f"\nlive at idle: {mb(sum(by_package.values()))} traced, by the allocating file's package:"
    )
    for name, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {mb(size)}  {name}")


def _short(filename: str) -> str:
    return filename.replace(str(REPO) + "/", "").split("site-packages/")[-1]


def _ours(filename: str) -> bool:
    return filename.startswith(tuple(f"{REPO}/{name}/" for name in OURS))


def report_growth(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, title: str, top: int
) -> None:
    """What `after` holds beyond `before`, module loads and the snapshots' own writing left
    out (they are the import table's): by allocating line, and by the innermost frame of
    flybot's own code on the stack (who asked for it)."""
    stats = [
        stat
        for stat in after.compare_to(before, "traceback")
        if not any(frame.filename.endswith("bench/_traced.py") for frame in stat.traceback)
    ]
    grown = sum(stat.size_diff for stat in stats)
    blocks = sum(stat.count_diff for stat in stats)
    print(f"\n{title}: {grown / 1024:+.0f} kB traced in {blocks:+d} blocks, module loads apart")
    by_line: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_caller: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for stat in stats:
        frame = stat.traceback[-1]  # a Traceback runs from the oldest frame to the newest
        line = by_line[f"{_short(frame.filename)}:{frame.lineno}"]
        line[0] += stat.size_diff
        line[1] += stat.count_diff
        ours = next((f for f in reversed(stat.traceback) if _ours(f.filename)), None)
        caller = by_caller[
            f"{_short(ours.filename)}:{ours.lineno}" if ours else "(no flybot frame)"
        ]
        caller[0] += stat.size_diff
        caller[1] += stat.count_diff
    for heading, table in (("by allocating line", by_line), ("by flybot's frame", by_caller)):
        print(f"  {heading}:")
        for where, (size, count) in sorted(table.items(), key=lambda kv: -abs(kv[1][0]))[:top]:
            print(f"    {size / 1024:+8.1f} kB  {count:+6d} blocks  {where}")


def report_native(
    phases: list[str], rss: dict[str, dict[str, int]], natives: list[dict[str, int]]
) -> None:
    for phase, figures in zip(phases, natives, strict=True):
        shown = [f"VmRSS {rss[phase]['VmRSS'] / 1024:.1f}"]
        shown += [f"{k} {v / 1024 / 1024:.1f}" for k, v in figures.items() if k != "threads"]
        print(f"  {phase:<12} " + ", ".join(shown) + f", {figures.get('threads')} threads")


def floor_imports(out: Path) -> dict[str, int]:
    """Each module's load in the floor's process (bench/_floor.py's imports, measured the
    same way)."""
    code = (
        "import _traced, importlib, sys\n"
        f"for name in {list(FLOOR_IMPORTS)!r}: importlib.import_module(name)\n"
        "import discord; discord.Client(intents=discord.Intents(guilds=True))\n"
        "_traced._dump(0, None)\n"
    )
    env = {**os.environ, "PYTHONTRACEMALLOC": "1", "FLYBOT_TRACE_DIR": str(out)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench"), str(REPO)])
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)
    found: dict[str, int] = json.loads((out / "1.imports.json").read_text())
    return found


def report_beyond_floor(costs: dict[str, int], floor: dict[str, int], top: int) -> None:
    beyond = {name: size for name, size in costs.items() if name not in floor}
    by_package: dict[str, int] = defaultdict(int)
    for name, size in beyond.items():
        by_package[module_package(name)] += size
    print(
        f"\nmodules `flybot run` loaded that the floor did not: {len(beyond)},"
        f" {mb(sum(beyond.values()))} (floor's modules: {mb(sum(floor.values()))} in all)"
    )
    for name, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {mb(size)}  {name}")


async def main(frames: int, top: int, fresh_database: bool, deploys: int) -> None:
    with tempfile.TemporaryDirectory(prefix="flybot-bench-where-") as scratch:
        out = Path(scratch)
        phases: list[str] = []
        rss: dict[str, dict[str, int]] = {}

        async def at(phase: str, pid: int) -> None:
            phases.append(phase)
            os.kill(pid, signal.SIGUSR1)
            for _ in range(600):
                if (out / f"{len(phases)}.native.json").exists():
                    break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"no snapshot from flybot at {phase}")
            rss[phase] = memory_kb(pid)

        tracing = {"PYTHONTRACEMALLOC": str(frames)} if frames else {}
        await scenario(
            at,
            entry="bench._traced",
            fresh_database=fresh_database,
            deploys=deploys,
            FLYBOT_TRACE_DIR=str(out),
            **tracing,
        )
        natives = [
            json.loads((out / f"{n}.native.json").read_text()) for n in range(1, len(phases) + 1)
        ]
        if not frames:
            print("flybot run, untraced: VmRSS and what tracemalloc does not see (MB)")
            report_native(phases, rss, natives)
            return
        snapshots = [tracemalloc.Snapshot.load(str(out / f"{n}.snapshot")) for n in (1, 2)]
        last = tracemalloc.Snapshot.load(str(out / f"{len(phases)}.snapshot"))
        costs: dict[str, int] = json.loads((out / "1.imports.json").read_text())
        later: dict[str, int] = json.loads((out / f"{len(phases)}.imports.json").read_text())
    with tempfile.TemporaryDirectory(prefix="flybot-bench-where-floor-") as scratch:
        floor = floor_imports(Path(scratch))
    print(f"flybot run, traced ({frames} frames): VmRSS (tracing's own memory in it) and more (MB)")
    report_native(phases, rss, natives)
    report_imports(costs, top)
    report_beyond_floor(costs, floor, top)
    new = {name: size for name, size in later.items() if name not in costs}
    if new:
        print(f"\nmodules first loaded after idle: {mb(sum(new.values()))}")
        for name, size in sorted(new.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {mb(size)}  {name}")
    report_live(snapshots[0], top)
    report_growth(
        tracemalloc.Snapshot([], frames), snapshots[0], "live at idle, module loads apart", top
    )
    report_growth(snapshots[0], snapshots[1], "growth idle → after the first deploy", top)
    if deploys > 1:
        title = f"growth after the first deploy → after deploy {deploys}"
        report_growth(snapshots[1], last, title, top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="0: untraced, native figures")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--fresh-database", action="store_true")
    parser.add_argument("--deploys", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.frames, options.top, options.fresh_database, options.deploys))
