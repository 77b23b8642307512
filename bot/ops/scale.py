"""Scaling a stage's Fly app as flyctl's `fly scale count|vm|show` does, worked out before
anything changes: which regions new machines land in, which machines go, which volumes the
new ones mount, what size every machine of a group becomes.

The rules (flyctl's internal/command/scale, read and restated):

- The regions are the ones given (`--region a,b`), else the primary region followed by
  every other region the group's machines are in, in the order Fly lists them.
- Additions go round-robin over the regions from the first, skipping a region at
  `--max-per-region`; a region over that maximum gives its excess back first.
- Removals take stopped machines first (the non-primary regions' before the primary's),
  then one machine at a time from the regions after the first, round-robin, so the
  primary region shrinks last; inside a region, the oldest machine goes first.
- A new machine is a clone of the group's newest machine's config, or, when the group has
  none, fly.toml's config for the group with the image the app runs now.
- A group that mounts a volume needs a free (unattached) volume of that name in each new
  machine's region: flybot does not create volumes, it says which are missing.

Everything here is pure: `plan_count` and `plan_vm` read the machines and volumes they are
given and raise `ScaleError` (one line, nothing changed) when the scale cannot be done.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.deploy.guest import PRESETS, Guest, memory_problem
from bot.fly import Machine, Volume

GROUP_KEY = "fly_process_group"
DEFAULT_GROUP = "app"

# Fly's region codes (fly platform regions, 2026). A region outside this list is refused
# before anything changes, rather than by Fly halfway through a scale.
FLY_REGIONS = frozenset(
    (
        "ams", "arn", "atl", "bog", "bom", "bos", "cdg", "den", "dfw", "ewr", "eze", "fra",
        "gdl", "gig", "gru", "hkg", "iad", "jnb", "lax", "lhr", "mad", "mia", "nrt", "ord",
        "otp", "phx", "qro", "scl", "sea", "sin", "sjc", "syd", "waw", "yul", "yyz",
    )
)  # fmt: skip
_REGION = re.compile(r"^[a-z]{3}$")
MAX_COUNT = 100  # machines per group flybot will scale to in one command


class ScaleError(ValueError):
    """The scale cannot be done as asked: one line saying why and what would work."""


def group_of(machine: Machine) -> str:
    return machine.metadata.get(GROUP_KEY) or DEFAULT_GROUP


def size_name(guest: dict[str, Any] | None) -> str:
    """`shared-cpu-2x`, `performance-4x`: the preset name of a guest's CPU kind and count."""
    guest = guest or {}
    kind, cpus = guest.get("cpu_kind") or "shared", guest.get("cpus") or 1
    return f"shared-cpu-{cpus}x" if kind == "shared" else f"{kind}-{cpus}x"


def guest_text(guest: dict[str, Any] | None) -> str:
    return f"{size_name(guest)} {(guest or {}).get('memory_mb') or 256} MB"


def parse_regions(text: str) -> tuple[str, ...]:
    """`nrt,sin` → ("nrt", "sin"): each a known Fly region, none twice."""
    regions = tuple(r.strip().lower() for r in text.split(",") if r.strip())
    if not regions:
        raise ScaleError("--region needs one or more region codes, e.g. --region nrt,sin.")
    for region in regions:
        if not _REGION.match(region) or region not in FLY_REGIONS:
            raise ScaleError(
                f"Unknown region '{region[:20]}'. Fly's regions: {', '.join(sorted(FLY_REGIONS))}."
            )
    if len(set(regions)) != len(regions):
        raise ScaleError(f"--region names a region twice: {text[:80]}.")
    return regions


def parse_count(word: str, groups: Sequence[str]) -> tuple[str, int]:
    """`3` (the stage's only group) or `web=3` → (group, count). `groups` are the stage's
    process groups from fly.toml (empty: not known, anything goes)."""
    group, sep, number = word.partition("=")
    if not sep:
        group, number = "", word
    if not re.fullmatch(r"[+-]?\d{1,9}", number):
        raise ScaleError(
            f"'{word[:40]}' is not a count: give a number (3) or group=number (web=3)."
        )
    count = int(number)
    if count < 0 or number.startswith(("+", "-")):
        raise ScaleError(
            f"'{word[:40]}': a count is the number of machines wanted, 0 or more (not {number})."
        )
    if count > MAX_COUNT:
        raise ScaleError(f"'{word[:40]}': flybot scales a group to {MAX_COUNT} machines at most.")
    if not group:
        if len(groups) > 1:
            raise ScaleError(
                f"This stage has several process groups ({', '.join(groups)}): say which, "
                f"e.g. {groups[0]}={count}."
            )
        group = groups[0] if groups else DEFAULT_GROUP
    if groups and group not in groups:
        raise ScaleError(f"No process group '{group[:40]}'. Groups: {', '.join(groups)}.")
    return group, count


def check_guest(size: str, memory_mb: int | None) -> Guest:
    """A preset size, with its memory or the memory given, as Fly would accept it."""
    preset = PRESETS.get(size.lower())
    if preset is None:
        raise ScaleError(f"Unknown size '{size[:40]}'. Sizes: {', '.join(PRESETS)}.")
    guest = Guest(preset.cpu_kind, preset.cpus, memory_mb or preset.memory_mb)
    problem = memory_problem(guest)
    if problem:
        raise ScaleError(
            f"--memory for {size}: {problem}. Fly allows 256-2048 MB per shared CPU in 256 MB "
            "steps, 2048-8192 MB per performance CPU in 1024 MB steps."
        )
    return guest


# --- count ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupCount:
    """What `scale count` does to one process group."""

    group: str
    config: dict[str, Any]  # the config new machines get (no volume id: see `volumes`)
    source: str  # "clone of <id>" or "fly.toml"
    current: int  # machines counted (those in the regions acted on)
    wanted: int
    create_regions: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()  # per new machine, the free volume it mounts ("" if none)
    remove: tuple[Machine, ...] = ()
    regions: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        head = f"[{self.group}] {self.current} → {self.wanted}"
        if not self.create_regions and not self.remove:
            return [f"{head}: already there, nothing to do"]
        out = [
            f"{head} ({guest_text(self.config.get('guest'))}; regions {', '.join(self.regions)})"
        ]
        if self.create_regions:
            where = Counter(self.create_regions)
            spread = ", ".join(f"{r} +{n}" for r, n in where.items())
            out.append(f"    create {len(self.create_regions)}: {spread} ({self.source})")
            mounted = [v for v in self.volumes if v]
            if mounted:
                out.append(f"    volumes mounted: {', '.join(mounted)}")
        if self.remove:
            gone = ", ".join(f"{m.id} ({m.region}, {m.state})" for m in self.remove)
            out.append(f"    destroy {len(self.remove)}: {gone}")
            if any(_volume_ids(m.config.to_json() if m.config else {}) for m in self.remove):
                out.append(
                    "    their volumes stay, detached (remove them with fly volumes destroy)"
                )
        return out


def _volume_ids(config: dict[str, Any]) -> list[str]:
    return [m["volume"] for m in config.get("mounts") or [] if m.get("volume")]


def ordered_regions(
    machines: Iterable[Machine], primary: str, given: Sequence[str] | None
) -> tuple[str, ...]:
    if given:
        return tuple(given)
    seen = [primary]
    for machine in machines:
        if machine.region and machine.region not in seen:
            seen.append(machine.region)
    return tuple(seen)


def _created(machine: Machine) -> str:
    """Fly's creation time (whole seconds): machines made in the same second keep the order
    Fly lists them in, which is the order they were made."""
    return machine.created_at or ""


def converge(
    machines: Sequence[Machine],
    wanted: int,
    regions: Sequence[str],
    max_per_region: int | None = None,
) -> tuple[tuple[str, ...], tuple[Machine, ...]]:
    """(regions of the machines to create, machines to destroy), in the order they happen.
    `machines` are the group's, in the regions acted on."""
    if max_per_region is not None and len(regions) * max_per_region < wanted:
        raise ScaleError(
            f"{wanted} machines do not fit in {len(regions)} region(s) at "
            f"--max-per-region {max_per_region}; add regions or raise the maximum."
        )
    by_region: dict[str, list[Machine]] = {r: [] for r in regions}
    for machine in sorted(machines, key=_created):
        by_region.setdefault(machine.region or "", []).append(machine)
    removed: list[Machine] = []

    def take(region: str, stopped_only: bool = False) -> bool:
        pool = by_region[region]
        candidates = [m for m in pool if m.state == "stopped"] if stopped_only else pool
        if not candidates:
            return False
        chosen = next((m for m in candidates if m.state == "stopped"), candidates[0])
        pool.remove(chosen)
        removed.append(chosen)
        return True

    if max_per_region is not None:  # a region over the maximum gives back its excess first
        for region in regions:
            while len(by_region[region]) > max_per_region:
                take(region)
    total = sum(len(ms) for ms in by_region.values())
    created: list[str] = []
    counts = {r: len(by_region[r]) for r in regions}
    index = 0
    while total + len(created) < wanted:
        region = regions[index % len(regions)]
        if max_per_region is None or counts[region] < max_per_region:
            counts[region] += 1
            created.append(region)
        index += 1
    excess = total - wanted
    stopped_first = [*regions[1:], regions[0]]
    for region in stopped_first:
        while excess > 0 and take(region, stopped_only=True):
            excess -= 1
    step = 1
    while excess > 0:
        region = regions[step % len(regions)]
        if take(region):
            excess -= 1
        step += 1
    return tuple(created), tuple(removed)


def newest(machines: Sequence[Machine]) -> Machine:
    best = machines[0]
    for machine in machines:
        if _created(machine) >= _created(best):
            best = machine
    return best


def clone_config(machine: Machine) -> dict[str, Any]:
    """The config a new machine of the group gets: its newest machine's, without what made
    that machine itself (standbys, its volume)."""
    config = copy.deepcopy(machine.config.to_json() if machine.config else {})
    config.pop("standbys", None)
    env = config.get("env") or {}
    env.pop("FLY_STANDBY_FOR", None)
    for mount in config.get("mounts") or []:
        mount.pop("volume", None)
    return config


def _mount_name(machine: Machine | None, config: dict[str, Any], pool: VolumePool) -> str | None:
    """The volume name the group mounts: fly.toml's `source` (sent as `name`), or, for a
    clone, the name of the volume its source machine mounts."""
    mounts = config.get("mounts") or []
    if not mounts:
        return None
    if mounts[0].get("name"):
        return str(mounts[0]["name"])
    source = (machine.config.to_json() if machine and machine.config else {}).get("mounts") or []
    volume_id = source[0].get("volume") if source else None
    name = pool.names_of.get(volume_id or "") or ""
    if name:
        mounts[0]["name"] = name
    return name or None


@dataclass
class VolumePool:
    """The app's free volumes, by name and region, handed out one per new machine."""

    free: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    names_of: dict[str, str] = field(default_factory=dict)  # volume id -> name

    @classmethod
    def of(cls, volumes: Sequence[Volume]) -> VolumePool:
        pool = cls()
        for volume in sorted(volumes, key=lambda v: v.created_at or ""):
            pool.names_of[volume.id] = volume.name or ""
            if volume.attached or (volume.state or "created") != "created":
                continue
            pool.free.setdefault((volume.name or "", volume.region or ""), []).append(volume.id)
        return pool

    def take(self, name: str, regions: Sequence[str], group: str) -> tuple[str, ...]:
        short: Counter[str] = Counter()
        taken: list[str] = []
        for region in regions:
            ids = self.free.get((name, region), [])
            if ids:
                taken.append(ids.pop(0))
            else:
                short[region] += 1
                taken.append("")
        if short:
            need = ", ".join(f"{n} in {r}" for r, n in short.items())
            first = next(iter(short))
            raise ScaleError(
                f"[{group}] mounts the volume '{name}': each new machine needs a free one in "
                f"its region, and {need} is missing; nothing was changed. Create them first "
                f"(fly volumes create {name} -r {first} -a <app>) or scale in other regions."
            )
        return tuple(taken)


def plan_group_count(
    group: str,
    wanted: int,
    machines: Sequence[Machine],
    *,
    primary: str,
    given_regions: Sequence[str] | None,
    max_per_region: int | None,
    fresh_config: dict[str, Any] | None,
    pool: VolumePool,
) -> GroupCount:
    """One group's count. `machines` are the group's live machines; `fresh_config` is
    fly.toml's config for the group with the current image (None when fly.toml has no
    such group or no image is known)."""
    regions = ordered_regions(machines, primary, given_regions)
    acted_on = [m for m in machines if m.region in regions]
    source_machine: Machine | None = None
    if machines:
        source_machine = newest(acted_on or machines)
        config, source = clone_config(source_machine), f"clone of {source_machine.id}"
    elif fresh_config is not None:
        config, source = copy.deepcopy(fresh_config), "from fly.toml and the current image"
    else:
        config, source = {}, ""
    creates, removes = converge(acted_on, wanted, regions, max_per_region)
    if creates and not config:
        raise ScaleError(
            f"[{group}] has no machines to clone and no image to build one from fly.toml; "
            "deploy the stage first."
        )
    volumes: tuple[str, ...] = ()
    name = _mount_name(source_machine, config, pool)
    if creates and name:
        volumes = pool.take(name, creates, group)
    return GroupCount(
        group=group,
        config=config,
        source=source,
        current=len(acted_on),
        wanted=wanted,
        create_regions=creates,
        volumes=volumes,
        remove=removes,
        regions=regions,
    )


# --- vm --------------------------------------------------------------------------------------


def vm_config(machine: Machine, guest: Guest) -> dict[str, Any]:
    """The machine's whole config (Fly takes no partial update) with the new guest."""
    config = copy.deepcopy(machine.config.to_json() if machine.config else {})
    config["guest"] = {**(config.get("guest") or {}), **guest.to_json()}
    return config


def undo_warning(
    config_name: str, group: str, toml_guest: Guest, has_vm_section: bool, guest: Guest
) -> str | None:
    """The line that says the next deploy would put another size back, or None."""
    if toml_guest == guest:
        return None
    said = f"{size_name(toml_guest.to_json())} {toml_guest.memory_mb} MB"
    where = (
        f"{config_name}'s [[vm]] says {said} for [{group}]"
        if has_vm_section
        else f"{config_name} has no [[vm]] for [{group}], so deploys use {said}"
    )
    return (
        f"⚠ {where}: the next deploy puts that back. To keep "
        f"{size_name(guest.to_json())} {guest.memory_mb} MB, set it in [[vm]] "
        f'(size = "{size_name(guest.to_json())}", memory = "{guest.memory_mb}mb").'
    )
