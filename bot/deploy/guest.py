"""Machine sizes: the named presets and the memory rules Fly enforces on a guest."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SHARED = "shared"
PERFORMANCE = "performance"

# Memory bounds per CPU and the step memory must be a multiple of, by CPU kind.
_MEMORY_RULES = {
    SHARED: (256, 2048, 256),
    PERFORMANCE: (2048, 8192, 1024),
}
_CPU_COUNTS = {
    SHARED: (1, 2, 4, 6, 8),
    PERFORMANCE: (1, 2, 4, 8, 16),
}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mb|mib|m|gb|gib|g)?\s*$", re.IGNORECASE)


class GuestError(ValueError):
    """A size that Fly would refuse; `field` is the [[vm]] key to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Guest:
    cpu_kind: str
    cpus: int
    memory_mb: int

    def to_json(self) -> dict[str, Any]:
        return {"cpu_kind": self.cpu_kind, "cpus": self.cpus, "memory_mb": self.memory_mb}


def _presets() -> dict[str, Guest]:
    shared = {f"shared-cpu-{n}x": Guest(SHARED, n, n * 256) for n in _CPU_COUNTS[SHARED]}
    performance = {
        f"performance-{n}x": Guest(PERFORMANCE, n, n * 2048) for n in _CPU_COUNTS[PERFORMANCE]
    }
    return shared | performance


PRESETS: dict[str, Guest] = _presets()
DEFAULT_GUEST = PRESETS["shared-cpu-1x"]


def parse_memory_mb(value: object) -> int:
    """`512`, `"512mb"`, `"1gb"`, `"2GiB"` → megabytes. Raises ValueError."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (match := _MEMORY.match(value)):
        amount = float(match.group(1))
        unit = (match.group(2) or "mb").lower()
        megabytes = amount * 1024 if unit.startswith("g") else amount
        if megabytes.is_integer():
            return int(megabytes)
    raise ValueError('must be a memory size like 512, "512mb" or "1gb"')


def build_guest(
    size: str | None = None,
    cpus: int | None = None,
    cpu_kind: str | None = None,
    memory_mb: int | None = None,
) -> Guest:
    """Start from the preset (or the 1x preset of the CPU kind) and apply the overrides.

    Like flyctl, overriding `cpus` keeps the preset's memory; a combination Fly would refuse
    is reported here, blaming the key that was given.
    """
    if size is not None and size not in PRESETS:
        raise GuestError("size", f'must be one of {", ".join(PRESETS)}, not "{size}"')
    if cpu_kind is not None and cpu_kind not in _MEMORY_RULES:
        raise GuestError("cpu_kind", f'must be shared or performance, not "{cpu_kind}"')
    kind = cpu_kind or (PRESETS[size].cpu_kind if size else SHARED)
    base = PRESETS[size] if size else PRESETS[f"{kind}-cpu-1x" if kind == SHARED else f"{kind}-1x"]
    count = cpus if cpus is not None else base.cpus
    if count not in _CPU_COUNTS[kind]:
        allowed = ", ".join(str(n) for n in _CPU_COUNTS[kind])
        raise GuestError("cpus", f"must be one of {allowed} for {kind} CPUs, not {count}")
    guest = Guest(kind, count, memory_mb if memory_mb is not None else base.memory_mb)
    problem = memory_problem(guest)
    if problem:
        given = {"memory": memory_mb, "cpus": cpus, "cpu_kind": cpu_kind}
        blamed = next((key for key, value in given.items() if value is not None), "size")
        raise GuestError(blamed, problem)
    return guest


def memory_problem(guest: Guest) -> str | None:
    low, high, step = _MEMORY_RULES[guest.cpu_kind]
    cpus, memory = guest.cpus, guest.memory_mb
    plural = "CPU" if cpus == 1 else "CPUs"
    if memory % step:
        return f"{memory} MB is not a multiple of {step} MB ({guest.cpu_kind} CPUs)"
    if not low * cpus <= memory <= high * cpus:
        return (
            f"{memory} MB is outside {low * cpus}-{high * cpus} MB for {cpus} "
            f"{guest.cpu_kind} {plural} ({low}-{high} MB per CPU)"
        )
    return None
