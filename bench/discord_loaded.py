"""`flybot run` with discord.py loaded beside it, for bench/memory.py: flybot has no Discord
adapter in `run` yet, so this process imports discord.py and builds its client (not
connected) before running the command line as usual.

    python -m bench.discord_loaded run
"""

from __future__ import annotations

import sys

import discord

from bot.cli import main

CLIENT = discord.Client(intents=discord.Intents.default())

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
