"""The chart costs nothing at start-up: matplotlib is imported on the first chart drawn."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO


def test_starting_the_bot_does_not_import_matplotlib() -> None:
    code = (
        "import sys, bot.runtime.run, bot.runtime.scheduler, commands, adapters.shell.session\n"
        "from commands import build_registry; build_registry()\n"
        "print('matplotlib' in sys.modules)\n"
        "from bot.usage.chart import render_png\n"
        "from bot.usage.config import UsageConfig\n"
        "from bot.usage.figures import compute_month\n"
        "from datetime import date\n"
        "figures = compute_month('2026-11', [], {}, UsageConfig(), date(2026, 11, 9))\n"
        "png = render_png(figures, 't')\n"
        "print('matplotlib' in sys.modules, png[:8] == b'\\x89PNG\\r\\n\\x1a\\n')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"], out.stdout
