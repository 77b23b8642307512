"""A toy verb with declared secret input (`vault put <project> <stage> NAME…`), for the Slack
modal tests, and `python -m tests.slack.toy_secrets …`: the `flybot` command line with the
toy family added, so `flybot run` can be tested as a process with it."""

from __future__ import annotations

import sys

import commands
from commands.context import CommandContext
from commands.errors import CommandError
from commands.kinds import PROJECT, SECRET_NAME, STAGE
from commands.registry import Flag, Param, command
from commands.roles import Role


@command(
    "vault",
    "put",
    summary="A toy: set secrets on a stage's Fly app from values asked privately.",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param("names", SECRET_NAME, many=True, asks_value=True),
    ),
    flags=(Flag("explode", "switch", help="fail with the values in the error"),),
    role=Role.deployer,
    guardable=True,
)
async def vault_put(ctx: CommandContext) -> None:
    if ctx.flags.get("explode"):
        raise RuntimeError(f"the toy exploded holding {dict(ctx.secrets.items())}")
    stage = ctx.catalog.projects[ctx.args["project"]].stage(ctx.args["stage"])
    if stage is None or ctx.services.fly is None:
        raise CommandError("no such stage, or no Fly token")
    await ctx.services.fly.set_secrets(stage.app, dict(ctx.secrets.items()))
    await ctx.say(f"set {', '.join(sorted(ctx.secrets))} on {stage.app}")


def main() -> int:
    from bot.runtime.cli import main as flybot

    this = sys.modules[__name__]
    if this not in commands.FAMILIES:
        commands.FAMILIES = (*commands.FAMILIES, this)
    return flybot(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
