"""`flybot run` with its memory traced, for bench/memory_where.py:

    PYTHONTRACEMALLOC=<frames> FLYBOT_TRACE_DIR=<dir> python -m bench._traced run

tracemalloc runs from the interpreter's start (PYTHONTRACEMALLOC). Every module's load is
counted in bytes: the traced memory its loading added, its own (`self`: code objects, the
module's namespace, what its body built) apart from the modules it imported meanwhile.
On SIGUSR1 the process writes, n counting from 1, each renamed into place once complete:
<dir>/<n>.snapshot (tracemalloc's, when tracing), <dir>/<n>.imports.json (module → own
bytes) and <dir>/<n>.native.json (glibc's heap, SQLite's own memory, threads). Without
PYTHONTRACEMALLOC only the native figures are written, undistorted by tracing's own mallocs.
"""

from __future__ import annotations

import _frozen_importlib  # type: ignore[import-not-found]
import ctypes
import json
import os
import signal
import sys
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

OUT = Path(os.environ["FLYBOT_TRACE_DIR"])
SELF: dict[str, int] = {}
_stack: list[int] = []  # bytes the modules being loaded have seen their children take
_load = _frozen_importlib._load_unlocked


def _measured_load(spec: Any) -> ModuleType:
    before = tracemalloc.get_traced_memory()[0]
    _stack.append(0)
    try:
        return _load(spec)  # type: ignore[no-any-return]
    finally:
        taken = tracemalloc.get_traced_memory()[0] - before
        children = _stack.pop()
        SELF[spec.name] = SELF.get(spec.name, 0) + taken - children
        if _stack:
            _stack[-1] += taken


_frozen_importlib._load_unlocked = _measured_load
_dumps = 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def native() -> dict[str, int]:
    """What tracemalloc does not see: glibc's heap (in use, free inside its arenas, mmapped)
    and SQLite's own allocations (page caches, schemas, prepared statements)."""
    found: dict[str, int] = {"threads": threading.active_count()}
    libc = ctypes.CDLL(None)
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _Mallinfo2
        info = libc.mallinfo2()
        found.update(
            heap_in_use=info.uordblks,
            heap_free=info.fordblks,
            mmapped=info.hblkhd,
            arena=info.arena,
        )
    maps = Path("/proc/self/maps").read_text().splitlines()
    sqlite = next((line.split()[-1] for line in maps if "libsqlite3" in line), None)
    if sqlite is not None:
        lib = ctypes.CDLL(sqlite)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        found["sqlite"] = lib.sqlite3_memory_used()
    return found


def _dump(signum: int, frame: FrameType | None) -> None:
    global _dumps
    _dumps += 1
    figures = native()  # first: before the snapshot's own allocations
    writes: list[tuple[str, Callable[[Path], object]]] = []
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        writes.append(("snapshot", lambda path: snapshot.dump(str(path))))
        writes.append(("imports.json", lambda path: path.write_text(json.dumps(SELF))))
    writes.append(("native.json", lambda path: path.write_text(json.dumps(figures))))
    for suffix, write in writes:
        part = OUT / f"{_dumps}.{suffix}.part"
        write(part)
        part.rename(OUT / f"{_dumps}.{suffix}")


signal.signal(signal.SIGUSR1, _dump)

if __name__ == "__main__":
    from bot.cli import main

    sys.exit(main(sys.argv[1:]))
