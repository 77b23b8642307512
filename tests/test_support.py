"""The leak search every secrets test relies on (tests/support.py `assert_found_nowhere`)
finds a value in each place it searches and in each written form, so a clean result
means something."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.store import make_engine, upgrade
from bot.store.audit import record
from bot.store.models import AuditEntry
from tests.support import assert_found_nowhere, places_holding

VALUE = 'pa$$"w0rd\\Zz'  # a quote and a backslash: three written forms


def test_a_clean_search_passes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    upgrade(make_engine(url))
    assert_found_nowhere(VALUE, url, tmp_path, log="nothing here", calls="[]")


@pytest.mark.parametrize(
    "written",
    [VALUE, 'pa$$\\"w0rd\\\\Zz', 'pa$$"w0rd\\\\Zz'],
    ids=["raw", "json", "repr"],
)
def test_each_written_form_in_a_text_is_found(tmp_path: Path, written: str) -> None:
    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    upgrade(make_engine(url))
    found = places_holding(VALUE, url, tmp_path, log=f"setting {written} now")
    assert [f.split(":")[0] for f in found] == ["log"]
    with pytest.raises(AssertionError, match="log: "):
        assert_found_nowhere(VALUE, url, tmp_path, log=f"setting {written} now")


def test_an_audit_entry_a_row_and_the_sqlite_file_are_searched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flybot.db'}"
    engine = make_engine(url)
    upgrade(engine)
    record(
        engine,
        AuditEntry(
            platform="shell",
            workspace_id="local",
            user_id="bob",
            action="secrets set",
            command="secrets set shop dev API_TOKEN",
            outcome="error",
            # as Fly's error quoted the request: JSON-escaped, which a repr escapes again
            reason=f'422: {{"values":{{"API_TOKEN":"{json.dumps(VALUE)[1:-1]}"}}}}',
        ),
    )
    engine.dispose()
    assert places_holding(VALUE, url, tmp_path) == [
        "a database row",
        "the audit log",
        "flybot.db",
    ]
