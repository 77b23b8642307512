"""Storage on SQLite and on PostgreSQL (the shared-database mode), through the migrations."""

from __future__ import annotations

import threading
from datetime import timedelta

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from bot.clock import utcnow
from bot.store import dedupe, locks, make_engine, upgrade
from bot.store.migrate import alembic_config, current_revision
from bot.store.principals import IdentityKey, add_grant, ensure_identity, remove_grant
from commands.permissions import ensure_admins, highest_role
from commands.roles import ANY, Role

TABLES = {
    "principal",
    "identity",
    "grant",
    "project",
    "stage",
    "audit_entry",
    "stage_lock",
    "dedupe_key",
    "link_request",
    "alembic_version",
}


def test_migrations_create_every_table_and_are_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None and current_revision(engine) == head


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_identities_are_keyed_on_immutable_ids_not_names(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    first = ensure_identity(engine, IdentityKey("slack", "T1", "U1"), "sam")
    renamed = ensure_identity(engine, IdentityKey("slack", "T1", "U1"), "samantha")
    other = ensure_identity(engine, IdentityKey("slack", "T1", "U2"), "sam")
    assert renamed.principal_id == first.principal_id
    assert renamed.display_name == "samantha"
    assert other.principal_id != first.principal_id


def test_grants_survive_a_new_engine(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    ensure_admins(engine, ("discord:42:7",))
    ensure_admins(engine, ("discord:42:7",))  # idempotent
    bob = ensure_identity(engine, IdentityKey("shell", "local", "bob"))
    assert add_grant(engine, bob.principal_id, "deployer", "ping-go", "prod", None)
    assert not add_grant(engine, bob.principal_id, "deployer", "ping-go", "prod", None)
    engine.dispose()

    reopened = make_engine(database_url)
    admin = ensure_identity(reopened, IdentityKey("discord", "42", "7"))
    assert highest_role(reopened, admin.principal_id, "x", "y") == Role.admin
    assert highest_role(reopened, bob.principal_id, "ping-go", "prod") == Role.deployer
    assert highest_role(reopened, bob.principal_id, "ping-go", ANY) is None
    assert remove_grant(reopened, bob.principal_id, "deployer", "ping-go", "prod")
    assert highest_role(reopened, bob.principal_id, "ping-go", "prod") is None


def test_two_racing_lockers_get_one_lock(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    owners = [ensure_identity(engine, IdentityKey("shell", "local", f"u{i}")) for i in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(owners))

    def take(owner_id: int) -> None:
        barrier.wait()
        taken, _ = locks.acquire(
            engine, "ping-go", "prod", owner_id, "x", "", utcnow() + timedelta(hours=1)
        )
        results.append(taken)

    threads = [threading.Thread(target=take, args=(o.principal_id,)) for o in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 7 + [True]


def test_a_delivery_key_is_claimed_once_across_engines(database_url: str) -> None:
    first, second = make_engine(database_url), make_engine(database_url)
    upgrade(first)
    assert dedupe.claim(first, "slack:Ev1")
    assert not dedupe.claim(second, "slack:Ev1")
    assert dedupe.claim(second, "slack:Ev2")


def test_postgres_urls_are_normalised() -> None:
    from bot.store.engine import normalize_url

    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_racing_deploy_claims_get_one_active_release_per_app(database_url: str) -> None:
    from datetime import timedelta as td

    from bot.deploy.engine import DeployBusy, Deployer
    from bot.deploy.plan import DeployPlan

    engine = make_engine(database_url)
    upgrade(engine)
    plan = DeployPlan(
        project="p",
        stage="s",
        app="p-s",
        image="i:1",
        image_source="given",
        image_digest="",
        previous_image="",
        strategy="rolling",
        max_unavailable=1,
        wait_timeout=td(minutes=1),
        release_command=None,
        primary_region="nrt",
        groups=(),
    )
    deployers = [Deployer(engine, None, instance=f"host{i}") for i in range(6)]  # type: ignore[arg-type]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(deployers))

    def claim(deployer: Deployer) -> None:
        barrier.wait()
        try:
            deployer.claim(plan, requested_by=None, requester_name=deployer.instance)
            outcomes.append("claimed")
        except DeployBusy as busy:
            assert "p-s is being deployed by host" in str(busy)
            outcomes.append("busy")

    threads = [threading.Thread(target=claim, args=(d,)) for d in deployers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["busy"] * 5 + ["claimed"]


def test_the_head_read_from_the_migration_files_is_alembics_and_a_start_at_head_skips_it(
    database_url: str,
) -> None:
    from bot.store.migrate import at_head, head_revision

    engine = make_engine(database_url)
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None and head_revision() == head
    assert not at_head(engine)  # a new database: no alembic_version yet
    upgrade(engine, "0007")
    assert not at_head(engine)  # one behind: upgrade() must run alembic
    upgrade(engine)
    assert at_head(engine) and current_revision(engine) == head
    engine.dispose()
