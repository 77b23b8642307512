"""Discord: a discord.py application. See render.py for how replies look."""
