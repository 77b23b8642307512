"""`/fly help [verb]`: what there is, and how to type it."""

from __future__ import annotations

from commands.context import CommandContext
from commands.errors import UsageError
from commands.kinds import WORD
from commands.registry import Param, command, suggest


@command(
    "help",
    summary="List the commands, or show how to use one.",
    params=(Param("verb", WORD, required=False), Param("sub", WORD, required=False)),
    audited=False,
    examples=("/fly help", "/fly help perms"),
)
async def help_command(ctx: CommandContext) -> None:
    registry = ctx.services.registry
    verb = ctx.args.get("verb")
    if verb is None:
        lines = []
        for name in registry.verbs:
            for one in registry.family(name):
                lines.append(f"{one.usage()}  — {one.summary} ({one.who})")
        await ctx.say_private(
            "Commands (the role each needs is in brackets). `/fly help <verb>` for more.",
            title="flybot help",
            lines=tuple(lines),
        )
        return
    family = registry.family(verb.lower())
    sub = ctx.args.get("sub")
    if sub is not None:
        family = [c for c in family if c.path[1:] == (sub.lower(),)]
    if not family:
        raise UsageError(
            f"No command '{verb}'.{suggest(verb, registry.verbs)} "
            f"Commands: {', '.join(registry.verbs)}."
        )
    lines = []
    for one in family:
        lines.append(f"{one.usage()}")
        lines.append(f"    {one.summary} Needs: {one.who}.")
        if one.guardable:
            lines.append("    A stage's policy can require approval for it.")
        for param in one.params:
            if param.help:
                lines.append(f"    {param.placeholder()}: {param.help}")
        for flag in one.flags:
            lines.append(f"    --{flag.name}: {flag.help}")
        lines.extend(f"    e.g. {example}" for example in one.examples)
    await ctx.say_private(f"Help for '{verb}'", lines=tuple(lines))
