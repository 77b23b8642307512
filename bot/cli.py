"""`python -m bot.cli`: the `flybot` command line (bot/runtime/cli.py)."""

from __future__ import annotations

import sys

from bot.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
