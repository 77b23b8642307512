from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.projects import load_catalog
from bot.settings import Settings
from commands import build_registry
from commands.context import Services
from commands.dispatch import parse_invocation
from commands.errors import UsageError
from commands.grammar import parse_line, split_words
from commands.port import Invocation
from tests.support import REPO


def test_words_split_like_a_shell_and_the_fly_prefix_is_optional() -> None:
    assert split_words('/fly lock ping-go prod "db migration"') == [
        "lock",
        "ping-go",
        "prod",
        "db migration",
    ]
    assert split_words("lock ping-go prod 'it''s'") == ["lock", "ping-go", "prod", "its"]


def test_curly_quotes_from_slack_and_phones_group_words() -> None:
    assert split_words("lock ping-go prod “db migration”") == [
        "lock",
        "ping-go",
        "prod",
        "db migration",
    ]


def test_flags_take_a_value_by_space_or_equals_and_switches_take_none() -> None:
    parsed = parse_line("audit ping-go --limit 5", frozenset())
    assert parsed.words == ("audit", "ping-go")
    assert parsed.flags == {"limit": "5"}
    assert parse_line("audit --limit=7").flags == {"limit": "7"}
    dry = parse_line("deploy ping-go prod --dry-run v3", frozenset({"dry-run"}))
    assert dry.words == ("deploy", "ping-go", "prod", "v3")
    assert dry.flags == {"dry-run": None}


def test_a_double_dash_ends_the_flags() -> None:
    assert parse_line("lock a b -- --not-a-flag").words == ("lock", "a", "b", "--not-a-flag")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('lock "unclosed', "no closing quotation"),
        ("audit --limit", "--limit needs a value"),
        ("audit --limit 1 --limit 2", "given twice"),
        ("audit --=3", "not a valid flag"),
        ("lock a b --dry-run=yes", None),
    ],
)
def test_malformed_lines_give_a_usage_error(line: str, message: str | None) -> None:
    if message is None:
        with pytest.raises(UsageError, match="takes no value"):
            parse_line(line, frozenset({"dry-run"}))
        return
    with pytest.raises(UsageError, match=message):
        parse_line(line)


_services = Services(
    engine=None,  # type: ignore[arg-type]  # parsing never touches the database
    catalog=load_catalog(REPO / "examples" / "flybot.toml"),
    settings=Settings(),
    registry=build_registry(),
)

_WORDS = st.sampled_from(
    [
        "help",
        "perms",
        "grant",
        "revoke",
        "list",
        "lock",
        "unlock",
        "audit",
        "link",
        "confirm",
        "whoami",
        "ping-go",
        "prod",
        "dev",
        "*",
        "@bob",
        "<@U1|x>",
        "admin",
        "viewer",
        "--limit",
        "--for",
        "--",
        "2h",
        "5",
        "-1",
        '"',
        "'",
        "\\",
        "“",
        "--x=",
        "=",
        "/fly",
        "\x00",
        "é",
        # every verb, and numbers, durations and flags at their extremes
        "deploy",
        "rollback",
        "releases",
        "status",
        "apps",
        "approve",
        "reject",
        "pending",
        "staging",
        "hello",
        "--dry-run",
        "--strategy",
        "canary",
        "--limit=99999999999",
        "--limit=-1",
        "--for=99999999999w",
        "--for=0s",
        "99999999999w",
        "999999999999999999999999s",
        "1000000000d",
        "0",
        "-0",
        "1e9",
        "18446744073709551617",
        "9" * 400,
        "0s",
        "1h30m",
        "<!channel>",
        "@everyone",
        "API_TOKEN=hunter2",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_WORDS, max_size=10).map(" ".join)))
def test_no_input_line_makes_the_parser_raise_anything_but_its_usage_error(line: str) -> None:
    invocation = Invocation("shell", "local", "c", "alice", "alice", line)
    try:
        parse_invocation(_services, invocation)
    except UsageError as exc:
        assert str(exc).strip(), "a usage error always says what was wrong"
        assert "\n" not in str(exc), "usage errors are one line"
