"""`/fly help [verb]`: what there is, and how to type it."""

from __future__ import annotations

from commands.context import CommandContext
from commands.errors import UsageError
from commands.registry import Param, Registry, suggest


def register(registry: Registry) -> None:
    @registry.command(
        "help",
        summary="List the commands, or show how to use one.",
        params=(Param("verb", required=False), Param("sub", required=False)),
        audited=False,
        examples=("/fly help", "/fly help perms"),
    )
    async def help_command(ctx: CommandContext) -> None:
        verb = ctx.args.get("verb")
        if verb is None:
            lines = []
            for name in registry.verbs:
                for command in registry.family(name):
                    lines.append(f"{command.usage()}  — {command.summary} ({command.who})")
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
        for command in family:
            lines.append(f"{command.usage()}")
            lines.append(f"    {command.summary} Needs: {command.who}.")
            if command.guardable:
                lines.append("    A stage's policy can require approval for it.")
            for param in command.params:
                if param.help:
                    lines.append(f"    {param.placeholder()}: {param.help}")
            for flag in command.flags:
                lines.append(f"    --{flag.name}: {flag.help}")
            lines.extend(f"    e.g. {example}" for example in command.examples)
        await ctx.say_private(f"Help for '{verb}'", lines=tuple(lines))
