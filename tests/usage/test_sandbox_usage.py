"""`flybot sandbox` shows a real usage report: the demo org's simulated month, back-filled
from the simulator's Prometheus on the first `usage`, with its chart saved to a file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.shell.test_sandbox_and_simulator_cli import flybot
from tests.shell.test_shell_process import answers


def test_the_sandbox_tour_of_usage(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    last = f"{now.replace(day=1) - timedelta(days=1):%Y-%m}"
    script = f"usage\nusage ping-go --month {last}\nusage subscribe weekly\n"
    out = answers(flybot("sandbox", script=script, tmp_path=tmp_path))
    report = " ".join(out["alice> usage"])
    assert f"Usage of the demo org, {now:%B %Y}" in report, report
    # the demo: 6 shared-cpu-1x 256 MB machines; ~28 GB a month out of nrt, ~18 GB of sin
    assert "shared-cpu-1x 256 MB" in report and "Estimated bill: $" in report
    assert "Outbound: NA+EU" in report and "Asia-Pacific" in report
    if now.day > 1:
        sampled = int(re.search(r"Days sampled: (\d+)", report).group(1))  # type: ignore[union-attr]
        assert sampled == now.day - 1
    [chart] = re.findall(r"📎 Usage \d{4}-\d{2}: (\S+\.png)", report)
    assert Path(chart).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    previous = " ".join(out[f"alice> usage ping-go --month {last}"])
    assert "Usage of ping-go" in previous and "No data:" in previous  # past the 15 days
    assert "Subscription #1: org usage weekly" in " ".join(out["alice> usage subscribe weekly"])
