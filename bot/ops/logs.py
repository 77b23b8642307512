"""Reading a machine's log lines as people want them in chat: one line per entry, and, for a
failure, the lines around it with the exit code and whether the kernel killed it for
memory (from Fly's machine events)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.fly import FlyAPIError, FlyClient, LogEntry, MachineEvent

log = logging.getLogger(__name__)

FAILURE_LINES = 20  # log lines a failure report shows


def format_line(entry: LogEntry) -> str:
    """`2026-12-03T08:40:01Z 148e21 nrt [error] message`, as `fly logs` prints them."""
    stamp = entry.timestamp
    if "." in stamp:  # whole seconds are enough to read; the order is Fly's
        stamp = stamp.split(".", 1)[0] + "Z"
    level = f"[{entry.level}] " if entry.level else ""
    return f"{stamp} {entry.instance} {entry.region} {level}{entry.message}".rstrip()


@dataclass(frozen=True)
class Exit:
    code: int | None
    oom_killed: bool
    restarts: int | None = None

    def describe(self) -> str:
        code = "?" if self.code is None else str(self.code)
        text = f"exit code {code}, " + ("OOM-killed" if self.oom_killed else "not OOM-killed")
        return text + (f", {self.restarts} restart(s)" if self.restarts else "")


def last_exit(events: Sequence[MachineEvent]) -> Exit | None:
    """The newest exit nobody asked for, by Fly's clock (None: it has not crashed)."""
    exits = []
    for event in events:
        request = event.request if isinstance(event.request, dict) else {}
        exit_event = request.get("exit_event")
        if event.type == "exit" and isinstance(exit_event, dict):
            exits.append((event.timestamp or 0, exit_event, request.get("restart_count")))
    if not exits:
        return None
    exits.sort(key=lambda item: item[0])
    unasked = [e for e in exits if not e[1].get("requested_stop")]
    if not unasked:
        return None
    _, exit_event, restarts = unasked[-1]
    code = exit_event.get("exit_code")
    return Exit(
        code=code if isinstance(code, int) else None,
        oom_killed=bool(exit_event.get("oom_killed")),
        restarts=restarts if isinstance(restarts, int) else None,
    )


@dataclass(frozen=True)
class FailureReport:
    machine_id: str
    lines: tuple[str, ...]
    exit: Exit | None
    problem: str = ""  # why the logs or events could not be read, when they could not

    def headline(self) -> str:
        head = (
            f"Last {len(self.lines)} log line(s) of {self.machine_id}"
            if self.lines
            else f"No log lines from {self.machine_id}"
        )
        head += f" ({self.exit.describe()})" if self.exit else " (no exit: the machine still runs)"
        if self.problem:
            head += f"; {self.problem}"
        return head + (":" if self.lines else ".")


async def failure_report(
    fly: FlyClient, app: str, machine_id: str, *, lines: int = FAILURE_LINES
) -> FailureReport:
    """What the failing machine printed last, and how it exited. Never raises for Fly's
    sake: whatever could not be read is named in `problem`."""
    problems = []
    text: tuple[str, ...] = ()
    try:
        entries = await fly.recent_logs(app, lines=lines, instance=machine_id)
        text = tuple(format_line(e) for e in entries)
    except FlyAPIError as exc:
        log.warning("logs of %s/%s could not be read: %s", app, machine_id, exc)
        problems.append(f"logs unavailable ({exc.status or 'no answer'}: {exc.message[:120]})")
    exit_: Exit | None = None
    try:
        exit_ = last_exit(await fly.list_events(app, machine_id, limit=50))
    except FlyAPIError as exc:
        log.warning("events of %s/%s could not be read: %s", app, machine_id, exc)
        problems.append(f"events unavailable ({exc.status or 'no answer'})")
    return FailureReport(machine_id, text, exit_, "; ".join(problems))
