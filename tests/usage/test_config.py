"""`[usage]` in flybot.toml: the legacy Hobby defaults, and strict checking."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.projects import ConfigError, load_catalog
from bot.usage.config import Prices, UsageConfig
from tests.support import write_projects


def load(tmp_path: Path, toml: str) -> UsageConfig:
    config = write_projects(tmp_path)
    config.write_text(toml + "\n\n" + config.read_text())
    return load_catalog(config).usage


def test_defaults_are_the_legacy_hobby_allowance(tmp_path: Path) -> None:
    usage = load(tmp_path, "")
    assert usage.machine_hours == 2232 == 3 * 24 * 31  # 3 machines all month
    assert (usage.free_size, usage.free_memory_mb, usage.volume_gb) == ("shared-cpu-1x", 256, 3)
    assert usage.outbound_gb == {"na_eu": 100, "apac": 30, "africa_india": 30}
    assert usage.thresholds == (80, 100)
    assert usage.prices.outbound_gb == {"na_eu": 0.02, "apac": 0.04, "africa_india": 0.12}
    assert usage.prices.volume_gb_month == 0.15 == usage.prices.rootfs_gb_month
    # shared-cpu-1x 256 MB a month (730 h) is the $1.94 of Fly's price list
    assert Prices().machine_hour("shared", 1, 256) * 730 == pytest.approx(1.94)


def test_keys_are_read(tmp_path: Path) -> None:
    usage = load(
        tmp_path,
        "[usage]\nmachine_hours = 0\noutbound_gb = { apac = 10 }\nthresholds = [100, 50]\n"
        "[usage.prices]\nvolume_gb_month = 0.2\n",
    )
    assert usage.machine_hours == 0
    assert usage.outbound_gb == {"na_eu": 100, "apac": 10, "africa_india": 30}
    assert usage.thresholds == (50, 100)
    assert usage.prices.volume_gb_month == 0.2


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[usage]\nmachine_hour = 3", "[usage]: unknown key 'machine_hour'; keys: free_memory_mb"),
        ("[usage]\nvolume_gb = -1", "'volume_gb' must be a number of at least 0, not -1"),
        ("[usage]\nvolume_gb = 'lots'", "'volume_gb' must be a number of at least 0, not 'lots'"),
        ("[usage]\noutbound_gb = { asia = 3 }", "'outbound_gb': unknown key 'asia'"),
        ("[usage]\noutbound_gb = 3", "'outbound_gb' must be a table of region groups"),
        ("[usage]\nthresholds = [80, 80]", "'thresholds' must be a list of distinct whole"),
        ("[usage]\nthresholds = [0.8]", "'thresholds' must be a list of distinct whole"),
        ("[usage]\nfree_size = 'tiny'", "'free_size' must be one of shared-cpu-1x"),
        ("[usage]\nfree_memory_mb = 300", "'free_memory_mb' must be a whole multiple of 256"),
        ("[usage.prices]\nvolume = 1", "[usage.prices]: unknown key 'volume'"),
        ("usage = 3", "[usage]: must be a table of keys"),
    ],
)
def test_a_bad_usage_table_stops_start_up_with_one_line(
    tmp_path: Path, toml: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, toml)
    message = str(raised.value)
    assert says in message, message
    assert "flybot.toml" in message and "\n" not in message
