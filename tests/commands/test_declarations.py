"""Verbs are declarations: module-level handlers with typed parameters, read by the pipeline,
by help and by any adapter (a Discord command tree with options and autocomplete)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.store import locks as lock_store
from bot.store.principals import IdentityKey, ensure_identity
from commands import FAMILIES, build_registry, locks
from commands.context import CommandContext
from commands.kinds import Binding, Kind
from commands.port import Invocation
from commands.registry import Command, Registry, declared_in
from tests.support import Bot, RecordingConversation, write_projects

NAME = re.compile(r"^[-_a-z0-9]{1,32}$")
OPTION_TYPE = {"string": 3, "integer": 4, "boolean": 5, "user": 6}
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


def test_every_verb_is_a_module_level_handler_declared_in_its_family() -> None:
    registry = build_registry()
    declared = [c for family in FAMILIES for c in declared_in(family)]
    assert {c.path for c in declared} == set(registry.commands)
    for one in declared:
        assert "<locals>" not in one.handler.__qualname__, one.name  # not a closure
        assert one.module in {f.__name__ for f in FAMILIES}
        for param in one.params:
            assert param.type.describe, (one.name, param.name)


async def test_a_handler_runs_directly_with_a_context_and_no_pipeline(tmp_path: Path) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    conversation = RecordingConversation()
    invocation = Invocation("shell", "local", "c", "ann", "ann", "")
    ann = ensure_identity(bot.engine, IdentityKey("shell", "local", "ann"), "ann")
    ctx = CommandContext(
        invocation=invocation,
        interaction=conversation,
        command=locks.lock,
        args={"project": "ping-go", "stage": "prod", "reason": "db migration"},
        flags={},
        principal_id=ann.principal_id,
        services=bot.services,
    )
    await locks.lock(ctx)
    held = lock_store.current_lock(bot.engine, "ping-go", "prod")
    assert held is not None and held.owner_name == "ann" and held.reason == "db migration"
    assert "ping-go/prod locked by ann for 1h" in conversation.all_text()


def discord_tree(registry: Registry) -> dict[str, Any]:
    """A `/fly` application command as Discord's API takes it, generated from the registry:
    a verb with sub-verbs is a sub-command group (its bare form, if any, the group's
    sub-command of the verb's own name), any other verb a sub-command; parameters and flags
    are typed options."""

    def option(name: str, kind: Kind, help: str, required: bool) -> dict[str, Any]:
        found: dict[str, Any] = {
            "type": OPTION_TYPE[kind.value_type],
            "name": name,
            "description": (help or kind.describe)[:100],
            "required": required,
        }
        if kind.choices:
            found["choices"] = [{"name": c, "value": c} for c in kind.choices]
        elif kind.complete is not None:
            found["autocomplete"] = True
        return found

    def options(one: Command) -> list[dict[str, Any]]:
        params = [option(p.name, p.type, p.help, p.required) for p in one.params]
        return params + [option(f.key, f.type, f.help, False) for f in one.flags]

    def sub(one: Command, name: str) -> dict[str, Any]:
        return {
            "type": SUB_COMMAND,
            "name": name,
            "description": one.summary[:100],
            "options": options(one),
        }

    tree: list[dict[str, Any]] = []
    for verb in registry.verbs:
        family = registry.family(verb)
        if all(len(c.path) == 1 for c in family):
            tree.extend(sub(c, verb) for c in family)
            continue
        # a verb with sub-verbs is a group; when it also runs bare (`/fly usage [project]`,
        # `/fly link [code]`), the bare form is the group's sub-command of the verb's name
        group = [sub(c, c.path[1] if len(c.path) == 2 else verb) for c in family]
        tree.append(
            {
                "type": SUB_COMMAND_GROUP,
                "name": verb,
                "description": f"{verb} commands",
                "options": group,
            }
        )
    return {"name": "fly", "description": "Fly.io from chat", "options": tree}


def check_discord_rules(node: dict[str, Any], depth: int = 0) -> None:
    assert NAME.match(node["name"]), node["name"]
    assert 1 <= len(node["description"]) <= 100, node["name"]
    children = node.get("options", [])
    assert len(children) <= 25, node["name"]
    names = [c["name"] for c in children]
    assert len(names) == len(set(names)), node["name"]
    values = [c for c in children if c["type"] > SUB_COMMAND_GROUP]
    required = [c.get("required", False) for c in values]
    assert required == sorted(required, reverse=True), f"{node['name']}: required first"
    for child in children:
        assert len(child.get("choices", [])) <= 25
        if child["type"] <= SUB_COMMAND_GROUP:
            assert depth < 2, "at most /fly group sub"
            check_discord_rules(child, depth + 1)
        else:
            assert NAME.match(child["name"]) and 1 <= len(child["description"]) <= 100


def test_a_discord_command_tree_is_generated_from_the_registry_within_its_rules() -> None:
    tree = discord_tree(build_registry())
    check_discord_rules(tree)
    top = {o["name"]: o for o in tree["options"]}
    assert {o["name"] for o in top["perms"]["options"]} == {"grant", "list", "revoke"}
    deploy = {o["name"]: o for o in top["deploy"]["options"]}
    assert deploy["project"]["autocomplete"] and deploy["stage"]["autocomplete"]
    assert deploy["dry-run"]["type"] == OPTION_TYPE["boolean"]
    assert [c["value"] for c in deploy["strategy"]["choices"]] == [
        "rolling",
        "immediate",
        "canary",
        "bluegreen",
    ]
    grant = {o["name"]: o for o in top["perms"]["options"][0]["options"]}
    assert grant["user"]["type"] == OPTION_TYPE["user"]
    assert top["approve"]["options"][0]["type"] == OPTION_TYPE["integer"]


def test_kinds_autocomplete_from_the_catalog(tmp_path: Path) -> None:
    bot = Bot.start(f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path))
    deploy = bot.services.registry.named("deploy")
    project, stage = deploy.params[0].type, deploy.params[1].type
    invocation = Invocation("discord", "9001", "c", "1", "ann", "")
    binding = Binding(bot.services.catalog, invocation)
    assert project.complete is not None and project.complete("p", binding) == ["ping-go"]
    binding.bound["project"] = "hello"
    assert stage.complete is not None and stage.complete("", binding) == ["dev", "staging", "prod"]
