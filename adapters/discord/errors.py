"""The Discord adapter's setup error, apart from discord.py: `flybot run` catches it without
importing discord.py when no Discord adapter is configured."""

from __future__ import annotations


class DiscordSetupError(Exception):
    """Discord refused the token, or did not answer: one line that says which."""
