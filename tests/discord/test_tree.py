"""The `/fly` command generated from the registry passes Discord's validation rules (names,
counts, lengths, option order; the fake Discord's `command_tree_error` checks what Discord's
bulk upsert refuses), and every verb's options come back as the line the pipeline parses."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.discord.tree import OptionsError, TreeError, chosen, line_of, tree
from commands import build_registry
from commands.grammar import split_words
from commands.kinds import PROJECT
from commands.registry import Command, Param, Registry, command
from tests.fakes.discord_api import command_tree_error, slash_data

NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for option in node.get("options") or []:
        found.extend(walk(option))
    return found


def test_the_tree_passes_discords_rules() -> None:
    registry = build_registry()
    body = tree(registry)
    assert command_tree_error(body) is None
    [fly] = body
    assert fly["name"] == "fly" and fly["contexts"] == [0]
    for node in walk(fly):
        assert NAME.match(node["name"]), node["name"]
        assert 1 <= len(node["description"]) <= 100
        assert len(node.get("options") or []) <= 25
    top = {o["name"]: o for o in fly["options"]}
    assert set(top) == set(registry.verbs)
    assert [o["name"] for o in top["certs"]["options"]] == [
        "add",
        "check",
        "list",
        "remove",
        "show",
    ]
    assert [o["name"] for o in top["link"]["options"]] == ["link", "confirm"]
    deploy = {o["name"]: o for o in top["deploy"]["options"]}
    assert deploy["project"]["autocomplete"] and deploy["stage"]["autocomplete"]
    assert deploy["dry-run"]["type"] == 5  # a switch is a boolean
    assert [c["value"] for c in deploy["strategy"]["choices"]] == [
        "rolling",
        "immediate",
        "canary",
        "bluegreen",
    ]
    rollback = {o["name"]: o for o in top["rollback"]["options"]}
    assert rollback["version"]["type"] == 4 and rollback["version"]["autocomplete"]
    approve = {o["name"]: o for o in top["approve"]["options"]}
    assert approve["id"]["autocomplete"] and approve["id"]["min_value"] == 1
    grant = {o["name"]: o for o in top["perms"]["options"]}["grant"]
    assert grant["options"][0] == {**grant["options"][0], "name": "user", "type": 6}


def test_the_validator_refuses_what_discord_refuses() -> None:
    body = tree(build_registry())
    bad = [dict(body[0], name="Fly Bot")]
    assert "does not match" in (command_tree_error(bad) or "")
    long = [dict(body[0], description="x" * 101)]
    assert "description" in (command_tree_error(long) or "")
    order = [
        {
            "name": "fly",
            "description": "d",
            "options": [
                {"type": 3, "name": "a", "description": "d", "required": False},
                {"type": 3, "name": "b", "description": "d", "required": True},
            ],
        }
    ]
    assert "required after optional" in (command_tree_error(order) or "")


def every_command_options(command: Command) -> dict[str, Any]:
    samples = {"project": "shop", "stage": "prod", "user": "1500000000000000002"}
    options: dict[str, Any] = {}
    for param in command.params:
        if param.type.value_type == "integer":
            options[param.name] = 3
        elif param.type.choices:
            options[param.name] = param.type.choices[0]
        else:
            options[param.name] = samples.get(param.name, "a-word")
    return options


def test_every_verb_comes_back_as_its_line() -> None:
    registry = build_registry()
    for path, declared in registry.commands.items():
        shown = path
        if len(path) == 1 and any(len(p) == 2 and p[0] == path[0] for p in registry.commands):
            shown = (path[0], path[0])  # the bare verb inside its group
        found = chosen(registry, slash_data(shown, every_command_options(declared)))
        assert found.command is declared
        words = split_words(line_of(found))
        again, _ = registry.resolve(tuple(words[:2]))
        assert again is declared, (path, words)


def test_options_with_spaces_and_dashes_stay_one_value() -> None:
    registry = build_registry()
    found = chosen(
        registry,
        slash_data(("lock",), {"project": "shop", "stage": "prod", "reason": "--db 'x' y"}),
    )
    words = split_words(line_of(found))
    assert words == ["lock", "--", "shop", "prod", "--db 'x' y"]
    grant = chosen(registry, slash_data(("perms", "grant"), {"user": "42", "role": "admin"}))
    assert line_of(grant) == "perms grant '<@42>' admin"


def test_a_flag_named_like_a_parameter_is_its_own_option() -> None:
    """`secrets set <project> <stage> <names> [--stage]`: the switch is `stage_only`."""
    registry = build_registry()
    [fly] = tree(registry)
    secrets = {o["name"]: o for o in fly["options"]}["secrets"]
    set_ = {o["name"]: o for o in secrets["options"]}["set"]
    assert [o["name"] for o in set_["options"]][:4] == ["project", "stage", "names", "stage_only"]
    found = chosen(
        registry,
        slash_data(
            ("secrets", "set"),
            {"project": "shop", "stage": "prod", "names": "A B", "stage_only": True},
        ),
    )
    assert line_of(found) == "secrets set shop prod A B --stage"


def test_a_later_option_without_the_one_before_it_is_refused() -> None:
    registry = build_registry()
    found = chosen(
        registry, slash_data(("perms", "grant"), {"user": "42", "role": "admin", "stage": "prod"})
    )
    with pytest.raises(OptionsError, match="Give <project> too"):
        line_of(found)


async def _noop(ctx: Any) -> None:
    return None


def test_more_verbs_than_discord_takes_is_an_error_not_a_cut() -> None:
    registry = Registry()
    for index in range(26):
        registry.add(
            command(f"verb{index}", summary="s", params=(Param("project", PROJECT),))(_noop)
        )
    with pytest.raises(TreeError, match="26 verbs"):
        tree(registry)


def test_long_help_is_shortened_to_100() -> None:
    registry = Registry()
    registry.add(command("big", summary="word " * 60)(_noop))
    [fly] = tree(registry)
    assert len(fly["options"][0]["description"]) == 100
    assert fly["options"][0]["description"].endswith("…")
