"""A stage's fly.toml, read the way flyctl reads it, and each process group's machine config.

`load_stage_config(path)` validates the file and returns a `StageConfig`; any problem is a
`FlyTomlError` naming the file, the line and the key. `StageConfig.machine_config(group,
image)` is the Machines API `config` object flyctl would send for that group (field names
as in the spec's `api.MachineConfig`).

Conventions worth knowing:
- `[env]` numbers and booleans become strings (`8080` → "8080", `true` → "true"), as flyctl
  does; names starting with `FLY_` are refused. Machines also get `FLY_PROCESS_GROUP` and,
  when set, `PRIMARY_REGION`, which flyctl adds.
- Durations are Go durations ("5s", "1h30m", "500ms") or a whole number of seconds; they are
  sent as Go formats them ("2m0s").
- `auto_stop_machines` is sent as fly-go sends it: off → false, stop → true, "suspend".
- A `[[vm]]`, `[mounts]`, `[metrics]` or `[[restart]]` entry that lists `processes` applies
  to those groups and wins over one without `processes`, which applies to every group.
- Unknown sections and keys are ignored (newer flyctl features); a known key of the wrong
  type is an error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import tomlkit
from tomlkit.exceptions import ParseError, TOMLKitError

from bot.deploy.guest import DEFAULT_GUEST, Guest, GuestError, build_guest, parse_memory_mb

DEFAULT_GROUP = "app"
DEFAULT_INTERNAL_PORT = 8080
STRATEGIES = ("rolling", "immediate", "canary", "bluegreen")
SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP")
_AUTOSTOP: dict[str | bool, bool | str] = {
    "off": False,
    "stop": True,
    "suspend": "suspend",
    False: False,
    True: True,
}
_RESTART_POLICIES = {"always": "always", "never": "no", "no": "no", "on-failure": "on-failure"}
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

Key = tuple[str | int, ...]


class FlyTomlError(Exception):
    """A fly.toml that is not valid TOML or that flyctl (or Fly) would refuse."""

    def __init__(self, path: Path, line: int | None, key: str | None, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [str(self.path)]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.key:
            where.append(f"key {self.key}")
        return f"{', '.join(where)}: {self.message}"


# --- durations -------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_MICROSECONDS = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}


def parse_go_duration(value: object) -> timedelta:
    """A Go duration string ("15s", "1h30m", "500ms") or whole seconds. Raises ValueError."""
    try:
        if _is_int(value):
            if value < 0:  # type: ignore[operator]
                raise ValueError(value)
            return timedelta(seconds=value)  # type: ignore[arg-type]
        if isinstance(value, str):
            text = value.strip()
            if text == "0":
                return timedelta(0)
            total, position = 0.0, 0
            for match in _DURATION_PART.finditer(text):
                if match.start() != position:
                    break
                total += float(match.group(1)) * _MICROSECONDS[match.group(2)]
                position = match.end()
            if text and position == len(text):
                return timedelta(microseconds=round(total))
    except OverflowError:
        pass
    raise ValueError(value)


def format_go_duration(delta: timedelta) -> str:
    """The text Go's time.Duration.String() gives: "15s", "2m0s", "1h30m0s", "500ms"."""
    micros = delta // timedelta(microseconds=1)
    if micros == 0:
        return "0s"
    if micros < 1_000:
        return f"{micros}µs"
    if micros < 1_000_000:
        return f"{_decimal(micros, 1_000)}ms"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if hours or minutes else ""
    return f"{text}{_decimal(rest, 1_000_000)}s"


def _decimal(amount: int, unit: int) -> str:
    whole, fraction = divmod(amount, unit)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


# --- where a key is written ------------------------------------------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"^\[\[\s*({_DOTTED_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\[\s*({_DOTTED_KEY})\s*\]")
_KEY_LINE = re.compile(rf"^({_DOTTED_KEY})\s*=")
_ONE_PART = re.compile(_KEY_PART)


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = (match.group(0) for match in _ONE_PART.finditer(dotted))
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in parts)


class KeyLines:
    """Line numbers of `[table]`, `[[array]]` headers and `key =` lines, by key path.

    A text scan, not a parser: it only has to find the line a validation error is about.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[Key, int] = {}
        self._arrays: dict[Key, int] = {}
        table: Key = ()
        in_multiline_string = False
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip()
            if not in_multiline_string:
                table = self._scan(line, number, table)
            if (line.count('"""') + line.count("'''")) % 2:
                in_multiline_string = not in_multiline_string

    def _scan(self, line: str, number: int, table: Key) -> Key:
        if match := _ARRAY_HEADER.match(line):
            parts = _split_key(match.group(1))
            array = (*self._resolve(parts[:-1]), parts[-1])
            index = self._arrays.get(array, 0)
            self._arrays[array] = index + 1
            self._note_with_parents((*array, index), number)
            return (*array, index)
        if match := _TABLE_HEADER.match(line):
            table = self._resolve(_split_key(match.group(1)))
            self._note_with_parents(table, number)
        elif match := _KEY_LINE.match(line):
            parts = _split_key(match.group(1))
            for end in range(1, len(parts) + 1):
                self._note((*table, *parts[:end]), number)
        return table

    def _resolve(self, parts: tuple[str, ...]) -> Key:
        # `[[services.ports]]` belongs to the latest `[[services]]` element.
        resolved: list[str | int] = []
        for part in parts:
            resolved.append(part)
            count = self._arrays.get(tuple(resolved))
            if count:
                resolved.append(count - 1)
        return tuple(resolved)

    def _note(self, key: Key, number: int) -> None:
        self._lines.setdefault(key, number)

    def _note_with_parents(self, key: Key, number: int) -> None:
        # `[a.b]` also creates `a` when no `[a]` was written: point at the first such header.
        for end in range(1, len(key) + 1):
            self._note(key[:end], number)

    def find(self, key: Key) -> int | None:
        """The line of the key, else of its nearest enclosing table that is written out."""
        for end in range(len(key), 0, -1):
            line = self._lines.get(key[:end])
            if line is not None:
                return line
        return None


def render_key(key: Key) -> str:
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            text += f".{name}" if text else name
    return text


# --- typed reading with located errors ---------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= 60 else f'{shown[:57]}..."'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = KeyLines(text)

    def fail(self, key: Key, message: str) -> NoReturn:
        raise FlyTomlError(self.path, self.lines.find(key), render_key(key) or None, message)


@dataclass(frozen=True)
class _Table:
    reader: _Reader
    key: Key
    data: Mapping[str, Any]

    def fail(self, name: str | None, message: str) -> NoReturn:
        self.reader.fail(self.key if name is None else (*self.key, name), message)

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def _typed(self, name: str, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self.data.get(name)
        if value is not None and not ok(value):
            self.fail(name, f"must be {expected}, not {_show(value)}")
        return value

    def text(self, name: str) -> str | None:
        value: str | None = self._typed(name, lambda v: isinstance(v, str), "a string")
        return value

    def required_text(self, name: str, purpose: str = "") -> str:
        value = self.text(name)
        if value is None:
            self.fail(name, f"is required{purpose}")
        if not value.strip():
            self.fail(name, f"must not be empty{purpose}")
        return value

    def flag(self, name: str) -> bool | None:
        value: bool | None = self._typed(name, lambda v: isinstance(v, bool), "true or false")
        return value

    def integer(self, name: str, minimum: int = 0) -> int | None:
        expected = f"a whole number of at least {minimum}"
        value: int | None = self._typed(name, lambda v: _is_int(v) and v >= minimum, expected)
        return value

    def port(self, name: str) -> int | None:
        expected = "a port number (1-65535)"
        value: int | None = self._typed(name, lambda v: _is_int(v) and 1 <= v <= 65535, expected)
        return value

    def required_port(self, name: str) -> int:
        value = self.port(name)
        if value is None:
            self.fail(name, "is required (a port number, 1-65535)")
        return value

    def choice(self, name: str, options: Iterable[str]) -> str | None:
        allowed = tuple(options)
        value: str | None = self._typed(
            name, lambda v: v in allowed, f"one of {', '.join(allowed)}"
        )
        return value

    def duration(self, name: str, allow_zero: bool = False) -> timedelta | None:
        value = self.data.get(name)
        if value is None:
            return None
        try:
            delta = parse_go_duration(value)
        except ValueError:
            self.fail(
                name,
                'must be a duration like "5s", "2m" or "1h30m" (or whole seconds), '
                f"not {_show(value)}",
            )
        if not delta and not allow_zero:
            self.fail(name, "must be longer than 0s")
        return delta

    def strings(self, name: str) -> tuple[str, ...] | None:
        value = self._typed(
            name,
            lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
            "a list of strings",
        )
        return None if value is None else tuple(value)

    def table(self, name: str) -> _Table | None:
        value = self._typed(name, lambda v: isinstance(v, dict), "a table")
        return None if value is None else _Table(self.reader, (*self.key, name), value)

    def passthrough(self, name: str) -> dict[str, Any] | None:
        """A table sent to Fly as written (options flybot has no rules for)."""
        table = self.table(name)
        return None if table is None else copy.deepcopy(dict(table.data))

    def tables(self, name: str) -> list[_Table]:
        """`[[name]]` elements; a single `[name]` table counts as one element."""
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, dict):
            return [_Table(self.reader, (*self.key, name), value)]
        if not isinstance(value, list):
            self.fail(name, f"must be a table or an array of tables, not {_show(value)}")
        tables = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.reader.fail((*self.key, name, index), f"must be a table, not {_show(item)}")
            tables.append(_Table(self.reader, (*self.key, name, index), item))
        return tables


# --- the parts of a stage config ---------------------------------------------------------


@dataclass(frozen=True)
class DeploySettings:
    strategy: str = "rolling"
    max_unavailable: int | float = 0.33  # >= 1: a machine count; < 1: a fraction of a group
    wait_timeout: timedelta = timedelta(minutes=5)
    release_command: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "max_unavailable": self.max_unavailable,
            "wait_timeout": format_go_duration(self.wait_timeout),
            "release_command": self.release_command,
        }


@dataclass(frozen=True)
class Check:
    """A health check, as `api.MachineCheck` (a service check or a named top-level one)."""

    type: str
    port: int | None = None
    interval: timedelta | None = None
    timeout: timedelta | None = None
    grace_period: timedelta | None = None
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    tls_skip_verify: bool | None = None
    tls_server_name: str | None = None
    headers: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        if self.port is not None:
            data["port"] = self.port
        for name in ("interval", "timeout", "grace_period"):
            delta = getattr(self, name)
            if delta is not None:
                data[name] = format_go_duration(delta)
        for name in ("method", "path", "protocol", "tls_skip_verify", "tls_server_name"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.headers:
            data["headers"] = [{"name": n, "values": list(v)} for n, v in self.headers]
        return data


@dataclass(frozen=True)
class NamedCheck:
    name: str
    check: Check
    processes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    protocol: str
    internal_port: int
    ports: tuple[Mapping[str, Any], ...]
    checks: tuple[Check, ...] = ()
    autostop: bool | str | None = None
    autostart: bool | None = None
    min_machines_running: int | None = None
    concurrency: Mapping[str, Any] | None = None
    processes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "internal_port": self.internal_port,
            "ports": copy.deepcopy([dict(p) for p in self.ports]),
        }
        if self.checks:
            data["checks"] = [c.to_json() for c in self.checks]
        optional = {
            "autostop": self.autostop,
            "autostart": self.autostart,
            "min_machines_running": self.min_machines_running,
            "concurrency": copy.deepcopy(dict(self.concurrency or {})) or None,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return data


@dataclass(frozen=True)
class VmSize:
    guest: Guest
    processes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mount:
    source: str
    destination: str
    processes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        # The volume id is chosen per machine when it is created; flyctl sends the name.
        return {"name": self.source, "path": self.destination}


@dataclass(frozen=True)
class Metrics:
    port: int
    path: str = "/metrics"
    processes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "path": self.path}


@dataclass(frozen=True)
class RestartPolicy:
    policy: str  # as the Machines API spells it: no | always | on-failure
    max_retries: int | None = None
    processes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"policy": self.policy}
        if self.max_retries is not None:
            data["max_retries"] = self.max_retries
        return data


class _Scoped(Protocol):
    @property
    def processes(self) -> tuple[str, ...]: ...


_S = TypeVar("_S", bound=_Scoped)


def _applies(item: _Scoped, group: str) -> bool:
    return not item.processes or group in item.processes


def _pick(items: Iterable[_S], group: str) -> _S | None:
    """The entry naming the group, else the first entry for every group."""
    items = tuple(items)
    named = next((i for i in items if group in i.processes), None)
    if named is not None:
        return named
    return next((i for i in items if not i.processes), None)


@dataclass(frozen=True)
class StageConfig:
    path: Path
    app: str
    primary_region: str | None
    build_image: str | None
    deploy: DeploySettings
    env: dict[str, str]
    processes: dict[str, str]  # as written; empty means one group, "app", with the image's CMD
    groups: tuple[str, ...]
    kill_signal: str | None = None
    kill_timeout: timedelta | None = None
    vms: tuple[VmSize, ...] = ()
    services: tuple[Service, ...] = ()
    checks: tuple[NamedCheck, ...] = ()
    mounts: tuple[Mount, ...] = ()
    metrics: tuple[Metrics, ...] = ()
    restart: tuple[RestartPolicy, ...] = ()

    def _require_group(self, group: str) -> None:
        if group not in self.groups:
            raise ValueError(
                f"{self.path}: no process group {group!r} (groups: {', '.join(self.groups)})"
            )

    def guest(self, group: str) -> Guest:
        self._require_group(group)
        vm = _pick(self.vms, group)
        return vm.guest if vm else DEFAULT_GUEST

    def group_has_services(self, group: str) -> bool:
        """flyctl starts two machines for a new group with services, one otherwise."""
        self._require_group(group)
        return any(_applies(s, group) for s in self.services)

    def mount(self, group: str) -> Mount | None:
        self._require_group(group)
        return _pick(self.mounts, group)

    def machine_config(self, group: str, image: str) -> dict[str, Any]:
        """The Machines API config for one group's machines (without release metadata)."""
        self._require_group(group)
        config: dict[str, Any] = {"image": image, "env": self._env(group)}
        command = self.processes.get(group)
        if command:
            config["init"] = {"cmd": shlex.split(command)}
        config["guest"] = self.guest(group).to_json()
        services = [s.to_json() for s in self.services if _applies(s, group)]
        if services:
            config["services"] = services
        checks = {c.name: c.check.to_json() for c in self.checks if _applies(c, group)}
        if checks:
            config["checks"] = checks
        mount = _pick(self.mounts, group)
        if mount:
            config["mounts"] = [mount.to_json()]
        metrics = _pick(self.metrics, group)
        if metrics:
            config["metrics"] = metrics.to_json()
        restart = _pick(self.restart, group)
        if restart:
            config["restart"] = restart.to_json()
        stop_config = self._stop_config()
        if stop_config:
            config["stop_config"] = stop_config
        config["metadata"] = {"fly_platform_version": "v2", "fly_process_group": group}
        return config

    def config_hash(self, group: str | None = None) -> str:
        """sha256 of the effective machine config(s), image left out.

        For the whole stage (no group) the `[deploy]` settings are included too, since a new
        strategy or release command changes what a deploy does.
        """
        payload: dict[str, Any]
        if group is not None:
            payload = self._imageless(group)
        else:
            payload = {
                "deploy": self.deploy.to_json(),
                "groups": {g: self._imageless(g) for g in self.groups},
            }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _imageless(self, group: str) -> dict[str, Any]:
        config = self.machine_config(group, image="")
        del config["image"]
        return config

    def _env(self, group: str) -> dict[str, str]:
        env = dict(self.env)
        if self.primary_region:
            env["PRIMARY_REGION"] = self.primary_region
        env["FLY_PROCESS_GROUP"] = group
        return env

    def _stop_config(self) -> dict[str, str]:
        stop: dict[str, str] = {}
        if self.kill_signal:
            stop["signal"] = self.kill_signal
        if self.kill_timeout is not None:
            stop["timeout"] = format_go_duration(self.kill_timeout)
        return stop


def with_release(config: Mapping[str, Any], release_id: str, version: int | str) -> dict[str, Any]:
    """A copy of a machine config carrying the release metadata flyctl looks for."""
    result = copy.deepcopy(dict(config))
    result["metadata"] = {
        **result.get("metadata", {}),
        "fly_release_id": release_id,
        "fly_release_version": str(version),
    }
    return result


# --- loading -----------------------------------------------------------------------------


def load_stage_config(path: Path) -> StageConfig:
    """Read and validate a stage's fly.toml. Raises FlyTomlError."""
    text = _read_text(path)
    try:
        data = tomlkit.parse(text).unwrap()
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        raise FlyTomlError(path, exc.line, None, f"not valid TOML: {reason}") from None
    except (TOMLKitError, ValueError, RecursionError) as exc:
        raise FlyTomlError(path, None, None, f"not valid TOML: {exc}") from None
    return _stage(_Table(_Reader(path, text), (), data))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FlyTomlError(path, None, None, "is not UTF-8 text") from None
    except OSError as exc:
        raise FlyTomlError(path, None, None, f"cannot be read ({exc.strerror})") from None


def _stage(root: _Table) -> StageConfig:
    app = root.required_text("app", " (it names the stage's Fly app)")
    if not _APP_NAME.match(app):
        root.fail("app", f"must be lowercase letters, digits and dashes, not {_show(app)}")
    primary_region = root.text("primary_region")
    if primary_region is not None and not primary_region.strip():
        root.fail("primary_region", "must not be empty")
    build = root.table("build")
    processes = _processes(root)
    groups = tuple(processes) or (DEFAULT_GROUP,)
    config = StageConfig(
        path=root.reader.path,
        app=app,
        primary_region=primary_region,
        build_image=build.text("image") if build else None,
        deploy=_deploy(root),
        env=_env(root),
        processes=processes,
        groups=groups,
        kill_signal=root.choice("kill_signal", SIGNALS),
        kill_timeout=root.duration("kill_timeout", allow_zero=True),
        vms=_only_one_each("[[vm]]", [(t, _vm(t, groups)) for t in root.tables("vm")]),
        services=tuple(_http_service(root, groups) + _services(root, groups)),
        checks=_top_level_checks(root, groups),
        mounts=_only_one_each("[mounts]", [(t, _mount(t, groups)) for t in root.tables("mounts")]),
        metrics=_only_one_each(
            "[metrics]", [(t, _metrics(t, groups)) for t in root.tables("metrics")]
        ),
        restart=_only_one_each(
            "[[restart]]", [(t, _restart(t, groups)) for t in root.tables("restart")]
        ),
    )
    _check_strategy(root, config)
    return config


def _scope(table: _Table, groups: tuple[str, ...]) -> tuple[str, ...]:
    named = table.strings("processes") or ()
    for name in named:
        if name not in groups:
            table.fail(
                "processes",
                f'names process group "{name}", which is not in [processes] '
                f"(groups: {', '.join(groups)})",
            )
    return named


def _only_one_each(section: str, entries: list[tuple[_Table, _S]]) -> tuple[_S, ...]:
    """Refuse two entries that would apply to the same group with the same precedence."""
    seen: set[str | None] = set()
    for table, item in entries:
        for target in dict.fromkeys(item.processes or (None,)):
            if target in seen:
                which = f'process group "{target}"' if target else "every process group"
                table.fail(
                    "processes" if target else None,
                    f"another {section} entry already applies to {which}; keep one",
                )
            seen.add(target)
    return tuple(item for _, item in entries)


def _processes(root: _Table) -> dict[str, str]:
    table = root.table("processes")
    if table is None:
        return {}
    processes: dict[str, str] = {}
    for name in table.data:
        if not _GROUP_NAME.match(name):
            table.fail(name, "process group names are letters, digits, dashes and underscores")
        command = table.text(name) or ""
        try:
            shlex.split(command)
        except ValueError as exc:
            table.fail(name, f"cannot be split into words ({exc})")
        processes[name] = command
    return processes


def _env(root: _Table) -> dict[str, str]:
    table = root.table("env")
    if table is None:
        return {}
    env: dict[str, str] = {}
    for name, value in table.data.items():
        if not name:
            table.fail(name, "environment variable names cannot be empty")
        if name.startswith("FLY_"):
            table.fail(name, "names starting with FLY_ are reserved for Fly")
        if isinstance(value, bool):
            env[name] = "true" if value else "false"
        elif isinstance(value, int | float | str):
            env[name] = str(value)
        else:
            table.fail(name, f"must be a string (or a number or true/false), not {_show(value)}")
    return env


def _deploy(root: _Table) -> DeploySettings:
    table = root.table("deploy")
    if table is None:
        return DeploySettings()
    defaults = DeploySettings()
    release_command = table.text("release_command")
    if release_command is not None:
        try:
            if not shlex.split(release_command):
                table.fail("release_command", "must not be empty")
        except ValueError as exc:
            table.fail("release_command", f"cannot be split into words ({exc})")
    return DeploySettings(
        strategy=table.choice("strategy", STRATEGIES) or defaults.strategy,
        max_unavailable=_max_unavailable(table, defaults.max_unavailable),
        wait_timeout=table.duration("wait_timeout") or defaults.wait_timeout,
        release_command=release_command,
    )


def _max_unavailable(table: _Table, default: int | float) -> int | float:
    value = table.get("max_unavailable")
    if value is None:
        return default
    if _is_int(value) and value >= 1:
        return int(value)
    if isinstance(value, float) and 0 < value < 1:
        return value
    table.fail(
        "max_unavailable",
        "must be a number of machines (1 or more) or a fraction between 0 and 1, "
        f"not {_show(value)}",
    )


def _check_strategy(root: _Table, config: StageConfig) -> None:
    strategy = config.deploy.strategy
    key: Key = ("deploy", "strategy")
    if strategy == "canary" and config.mounts:
        root.reader.fail(key, "canary cannot be used with [mounts] (volumes)")
    has_checks = config.checks or any(s.checks for s in config.services)
    if strategy == "bluegreen" and not has_checks:
        root.reader.fail(key, "bluegreen needs at least one health check")


def _vm(table: _Table, groups: tuple[str, ...]) -> VmSize:
    memory: int | None = None
    if table.get("memory") is not None:
        try:
            memory = parse_memory_mb(table.get("memory"))
        except ValueError as exc:
            table.fail("memory", f"{exc}, not {_show(table.get('memory'))}")
    memory_mb = table.integer("memory_mb", minimum=1)
    if memory is not None and memory_mb is not None:
        table.fail("memory_mb", "give memory or memory_mb, not both")
    try:
        guest = build_guest(
            size=table.text("size"),
            cpus=table.integer("cpus", minimum=1),
            cpu_kind=table.text("cpu_kind"),
            memory_mb=memory if memory is not None else memory_mb,
        )
    except GuestError as exc:
        field = "memory_mb" if exc.field == "memory" and memory_mb is not None else exc.field
        table.fail(field, str(exc))
    return VmSize(guest=guest, processes=_scope(table, groups))


def _check(table: _Table, kind: str | None = None, with_port: bool = False) -> Check:
    if kind is None:
        kind = table.choice("type", ("tcp", "http"))
        if kind is None:
            table.fail("type", "is required (tcp or http)")
    http = kind == "http"
    return Check(
        type=kind,
        port=table.required_port("port") if with_port else None,
        interval=table.duration("interval"),
        timeout=table.duration("timeout"),
        grace_period=table.duration("grace_period", allow_zero=True),
        method=table.text("method") if http else None,
        path=table.text("path") if http else None,
        protocol=table.choice("protocol", ("http", "https")) if http else None,
        tls_skip_verify=table.flag("tls_skip_verify") if http else None,
        tls_server_name=table.text("tls_server_name") if http else None,
        headers=_headers(table) if http else (),
    )


def _headers(table: _Table) -> tuple[tuple[str, tuple[str, ...]], ...]:
    headers = table.table("headers")
    if headers is None:
        return ()
    result = []
    for name, value in headers.data.items():
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            headers.fail(name, f"must be a string or a list of strings, not {_show(value)}")
        result.append((name, tuple(values)))
    return tuple(result)


def _autostop(table: _Table) -> bool | str | None:
    value = table.get("auto_stop_machines")
    if value is None:
        return None
    if isinstance(value, bool | str) and value in _AUTOSTOP:
        return _AUTOSTOP[value]
    table.fail("auto_stop_machines", f"must be off, stop or suspend, not {_show(value)}")


def _concurrency(table: _Table) -> dict[str, Any] | None:
    concurrency = table.table("concurrency")
    if concurrency is None:
        return None
    kind = concurrency.choice("type", ("connections", "requests"))
    limits = {name: concurrency.integer(name, minimum=1) for name in ("hard_limit", "soft_limit")}
    data: dict[str, Any] = {"type": kind} if kind else {}
    data.update({k: v for k, v in limits.items() if v is not None})
    return data


def _http_service(root: _Table, groups: tuple[str, ...]) -> list[Service]:
    table = root.table("http_service")
    if table is None:
        return []
    http_options = table.passthrough("http_options")
    tls_options = table.passthrough("tls_options")
    plain: dict[str, Any] = {
        "port": 80,
        "handlers": ["http"],
        "force_https": bool(table.flag("force_https")),
    }
    secure: dict[str, Any] = {"port": 443, "handlers": ["tls", "http"]}
    if http_options:
        plain["http_options"] = http_options
        secure["http_options"] = copy.deepcopy(http_options)
    if tls_options:
        secure["tls_options"] = tls_options
    return [
        Service(
            protocol="tcp",
            internal_port=table.port("internal_port") or DEFAULT_INTERNAL_PORT,
            ports=(plain, secure),
            checks=tuple(_check(t, "http") for t in table.tables("checks")),
            autostop=_autostop(table),
            autostart=table.flag("auto_start_machines"),
            min_machines_running=table.integer("min_machines_running"),
            concurrency=_concurrency(table),
            processes=_scope(table, groups),
        )
    ]


def _services(root: _Table, groups: tuple[str, ...]) -> list[Service]:
    services = []
    for table in root.tables("services"):
        protocol = table.choice("protocol", ("tcp", "udp"))
        if protocol is None:
            table.fail("protocol", "is required (tcp or udp)")
        tcp_checks = [_check(t, "tcp") for t in table.tables("tcp_checks")]
        http_checks = [_check(t, "http") for t in table.tables("http_checks")]
        services.append(
            Service(
                protocol=protocol,
                internal_port=table.required_port("internal_port"),
                ports=tuple(_service_port(t) for t in table.tables("ports")),
                checks=tuple(tcp_checks + http_checks),
                autostop=_autostop(table),
                autostart=table.flag("auto_start_machines"),
                min_machines_running=table.integer("min_machines_running"),
                concurrency=_concurrency(table),
                processes=_scope(table, groups),
            )
        )
    return services


def _service_port(table: _Table) -> dict[str, Any]:
    port = table.port("port")
    start, end = table.port("start_port"), table.port("end_port")
    if port is None and (start is None or end is None):
        table.fail("port", "is required (or start_port and end_port for a range)")
    if start is not None and end is not None and start > end:
        table.fail("end_port", f"must not be below start_port ({start}), not {end}")
    data: dict[str, Any] = {}
    fields = {
        "port": port,
        "start_port": start,
        "end_port": end,
        "handlers": list(table.strings("handlers") or []) or None,
        "force_https": table.flag("force_https"),
    }
    data.update({k: v for k, v in fields.items() if v is not None})
    for name in ("tls_options", "http_options", "proxy_proto_options"):
        options = table.passthrough(name)
        if options is not None:
            data[name] = options
    return data


def _top_level_checks(root: _Table, groups: tuple[str, ...]) -> tuple[NamedCheck, ...]:
    checks = root.table("checks")
    if checks is None:
        return ()
    named = []
    for name in checks.data:
        table = checks.table(name)
        assert table is not None  # a key of the table, so present
        check = _check(table, with_port=True)
        named.append(NamedCheck(name=name, check=check, processes=_scope(table, groups)))
    return tuple(named)


def _mount(table: _Table, groups: tuple[str, ...]) -> Mount:
    source = table.required_text("source", " (the volume name)")
    destination = table.required_text("destination", " (where the volume is mounted)")
    if not destination.startswith("/"):
        table.fail("destination", f"must be an absolute path, not {_show(destination)}")
    return Mount(source=source, destination=destination, processes=_scope(table, groups))


def _metrics(table: _Table, groups: tuple[str, ...]) -> Metrics:
    return Metrics(
        port=table.required_port("port"),
        path=table.text("path") or "/metrics",
        processes=_scope(table, groups),
    )


def _restart(table: _Table, groups: tuple[str, ...]) -> RestartPolicy:
    policy = table.choice("policy", ("always", "never", "on-failure", "no"))
    if policy is None:
        table.fail("policy", "is required (always, never or on-failure)")
    return RestartPolicy(
        policy=_RESTART_POLICIES[policy],
        max_retries=table.integer("retries"),
        processes=_scope(table, groups),
    )
