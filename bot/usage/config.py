"""`[usage]` in flybot.toml: the org's free allowances, the prices of the estimate and the
alert thresholds. Every key is optional; the defaults are Fly's legacy Hobby allowance
(../shared/fly-api/README.md, "Allowances and prices"). New orgs since Oct 2024 have no
allowance: they set the allowances to 0.

    [usage]
    machine_hours = 2232          # 3 shared-cpu-1x 256 MB machines running all month (31 days)
    free_size = "shared-cpu-1x"   # the size the free machine-hours are of
    free_memory_mb = 256
    volume_gb = 3                 # GB-months of volumes
    outbound_gb = { na_eu = 100, apac = 30, africa_india = 30 }
    thresholds = [80, 100]        # percent of an allowance at which the channel hears
    stopped_rootfs_gb = 1.0       # the root filesystem a stopped machine pays for
    waived_under = 5.0            # a month's bill under this is not charged (0: always)

    [usage.prices]                # US dollars
    shared_cpu_month = 1.94       # a shared vCPU with 256 MB, a month (730 hours)
    performance_cpu_month = 31.0  # a performance vCPU with 2048 MB
    memory_gb_month = 5.0         # memory above what the size includes
    volume_gb_month = 0.15
    rootfs_gb_month = 0.15        # a stopped machine's root filesystem
    outbound_gb = { na_eu = 0.02, apac = 0.04, africa_india = 0.12 }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.usage.regions import AFRICA_INDIA, APAC, GROUPS, NA_EU

HOURS_PER_MONTH = 730.0  # Fly's prices per month are per 730 hours


@dataclass(frozen=True)
class Prices:
    shared_cpu_month: float = 1.94
    performance_cpu_month: float = 31.0
    memory_gb_month: float = 5.0
    volume_gb_month: float = 0.15
    rootfs_gb_month: float = 0.15
    outbound_gb: dict[str, float] = field(
        default_factory=lambda: {NA_EU: 0.02, APAC: 0.04, AFRICA_INDIA: 0.12}
    )

    def machine_hour(self, cpu_kind: str, cpus: int, memory_mb: int) -> float:
        """A machine of this size running one hour: its vCPUs with the memory they include
        (256 MB a shared vCPU, 2048 MB a performance one), plus the memory above that."""
        performance = cpu_kind == "performance"
        cpu = self.performance_cpu_month if performance else self.shared_cpu_month
        included = cpus * (2048 if performance else 256)
        extra_gb = max(0, memory_mb - included) / 1024
        return (cpus * cpu + extra_gb * self.memory_gb_month) / HOURS_PER_MONTH


@dataclass(frozen=True)
class UsageConfig:
    machine_hours: float = 2232.0
    free_size: str = "shared-cpu-1x"
    free_memory_mb: int = 256
    volume_gb: float = 3.0
    outbound_gb: dict[str, float] = field(
        default_factory=lambda: {NA_EU: 100.0, APAC: 30.0, AFRICA_INDIA: 30.0}
    )
    thresholds: tuple[int, ...] = (80, 100)
    stopped_rootfs_gb: float = 1.0
    waived_under: float = 5.0
    prices: Prices = field(default_factory=Prices)


KEYS = (
    "free_memory_mb",
    "free_size",
    "machine_hours",
    "outbound_gb",
    "prices",
    "stopped_rootfs_gb",
    "thresholds",
    "volume_gb",
    "waived_under",
)
PRICE_KEYS = (
    "memory_gb_month",
    "outbound_gb",
    "performance_cpu_month",
    "rootfs_gb_month",
    "shared_cpu_month",
    "volume_gb_month",
)
SIZES = ("shared-cpu-1x", "shared-cpu-2x", "shared-cpu-4x", "shared-cpu-8x", "performance-1x",
         "performance-2x", "performance-4x", "performance-8x", "performance-16x")  # fmt: skip


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _unknown(raw: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key '{unknown[0]}'; keys: {', '.join(known)}.")


def _number(raw: dict[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: '{key}' must be a number of at least 0, not {_shown(value)}.")
    return float(value)


def _groups(
    raw: dict[str, Any], key: str, default: dict[str, float], where: str
) -> dict[str, float]:
    if key not in raw:
        return dict(default)
    value = raw[key]
    if not isinstance(value, dict):
        raise ValueError(
            f"{where}: '{key}' must be a table of region groups ({', '.join(GROUPS)}), e.g. "
            f"{{ na_eu = 100 }}, not {_shown(value)}."
        )
    _unknown(value, GROUPS, f"{where}: '{key}'")
    out = dict(default)
    for group in value:
        out[group] = _number(value, group, 0, f"{where}: '{key}'")
    return out


def parse_usage(raw: Any, where: str) -> UsageConfig:
    """`[usage]` read strictly: an unknown key, a wrong type or a negative amount is a
    `ValueError` naming the key and what is allowed."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a table of keys: {', '.join(KEYS)}.")
    _unknown(raw, KEYS, where)
    base = UsageConfig()
    size = raw.get("free_size", base.free_size)
    if size not in SIZES:
        raise ValueError(
            f"{where}: 'free_size' must be one of {', '.join(SIZES)}, not {_shown(size)}."
        )
    memory = raw.get("free_memory_mb", base.free_memory_mb)
    if isinstance(memory, bool) or not isinstance(memory, int) or memory < 256 or memory % 256:
        raise ValueError(
            f"{where}: 'free_memory_mb' must be a whole multiple of 256, not {_shown(memory)}."
        )
    thresholds = raw.get("thresholds", list(base.thresholds))
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in thresholds)
        or not all(1 <= t <= 1000 for t in thresholds)
        or len(set(thresholds)) != len(thresholds)
    ):
        raise ValueError(
            f"{where}: 'thresholds' must be a list of distinct whole percentages from 1 to "
            f"1000, e.g. [80, 100], not {_shown(thresholds)}."
        )
    prices_raw = raw.get("prices", {})
    pwhere = f"{where.removesuffix('[usage]')}[usage.prices]"
    if not isinstance(prices_raw, dict):
        raise ValueError(f"{pwhere}: must be a table of keys: {', '.join(PRICE_KEYS)}.")
    _unknown(prices_raw, PRICE_KEYS, pwhere)
    p = Prices()
    prices = Prices(
        shared_cpu_month=_number(prices_raw, "shared_cpu_month", p.shared_cpu_month, pwhere),
        performance_cpu_month=_number(
            prices_raw, "performance_cpu_month", p.performance_cpu_month, pwhere
        ),
        memory_gb_month=_number(prices_raw, "memory_gb_month", p.memory_gb_month, pwhere),
        volume_gb_month=_number(prices_raw, "volume_gb_month", p.volume_gb_month, pwhere),
        rootfs_gb_month=_number(prices_raw, "rootfs_gb_month", p.rootfs_gb_month, pwhere),
        outbound_gb=_groups(prices_raw, "outbound_gb", p.outbound_gb, pwhere),
    )
    return UsageConfig(
        machine_hours=_number(raw, "machine_hours", base.machine_hours, where),
        free_size=size,
        free_memory_mb=memory,
        volume_gb=_number(raw, "volume_gb", base.volume_gb, where),
        outbound_gb=_groups(raw, "outbound_gb", base.outbound_gb, where),
        thresholds=tuple(sorted(thresholds)),
        stopped_rootfs_gb=_number(raw, "stopped_rootfs_gb", base.stopped_rootfs_gb, where),
        waived_under=_number(raw, "waived_under", base.waived_under, where),
        prices=prices,
    )
