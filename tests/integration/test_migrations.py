"""Alembic builds exactly the schema the models describe.

The money invariants live in the schema (partial unique indexes, CHECKs), so a migration
that drifts from ``lootbox.persistence.models`` would silently drop one of them in
production while every model-based test still passes. Each test migrates a database that
is empty to begin with and asks Alembic's autogenerate comparison for differences.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from lootbox.persistence.migrate import alembic_config, upgrade_database
from lootbox.persistence.models import Base
from lootbox.persistence.secrets import SecretBox
from tests.conftest import empty_postgres_database

# What ``compare_metadata`` does not look at: CHECK constraints and the WHERE clause of a
# partial index. These carry the money invariants, so they are compared here by hand.


def model_checks() -> dict[str, set[str]]:
    return {
        table.name: {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        for table in Base.metadata.sorted_tables
    }


def model_partial_indexes() -> dict[str, str]:
    """Partial index name -> its WHERE clause, as the models write it."""
    found = {}
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            where = index.dialect_options["postgresql"]["where"]
            if where is not None:
                found[str(index.name)] = str(where)
    return found


def literals(sql: str) -> list[str]:
    return sorted(re.findall(r"'([^']*)'", sql))


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    head = script.get_current_head()
    assert head is not None
    return head


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def assert_checks_and_partial_indexes_match(engine: Engine) -> None:
    inspector = inspect(engine)
    for table, names in model_checks().items():
        found = {check["name"] for check in inspector.get_check_constraints(table)}
        assert found == names, table

    expected = model_partial_indexes()
    assert len(expected) == 9  # the count guards the collector itself
    reflected = {}
    for table in inspector.get_table_names():
        for index in inspector.get_indexes(table):
            where = index.get("dialect_options", {}).get("postgresql_where")
            if where is not None:
                reflected[index["name"]] = str(where)
    assert set(reflected) == set(expected)
    for name, where in expected.items():
        # PostgreSQL rewrites the clause (casts, ANY(ARRAY[...])) but keeps its literals.
        assert literals(reflected[name]) == literals(where), name


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database of this test's own; its URL (dropped after)."""
    with empty_postgres_database("lootbox_m") as url:
        yield url


def test_upgrade_head_on_empty_postgres_matches_the_models(empty_postgres: str) -> None:
    engine = create_engine(empty_postgres)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        upgrade_database(empty_postgres)
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
        assert_checks_and_partial_indexes_match(engine)
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(empty_postgres: str) -> None:
    upgrade_database(empty_postgres)
    upgrade_database(empty_postgres)  # the release step runs on every deploy
    engine = create_engine(empty_postgres)
    try:
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_the_comparison_notices_a_missing_invariant(empty_postgres: str) -> None:
    """Guard against a comparison that cannot fail: drop one partial unique index."""
    upgrade_database(empty_postgres)
    engine = create_engine(empty_postgres)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX uq_money_movements_live_item_credit"))
        differences = schema_differences(engine)
    finally:
        engine.dispose()
    assert [d[0] for d in differences] == ["add_index"]
    assert differences[0][1].name == "uq_money_movements_live_item_credit"


def test_paas_postgres_url_form_is_accepted(empty_postgres: str) -> None:
    """PaaS add-ons hand out ``postgres://user:pass@host/db``; SQLAlchemy alone rejects it."""
    url = make_url(empty_postgres)
    paas_url = url.render_as_string(hide_password=False).replace(
        f"{url.drivername}://", "postgres://", 1
    )
    assert paas_url.startswith("postgres://")

    upgrade_database(paas_url)

    engine = create_engine(empty_postgres)
    try:
        assert current_revision(engine) == head_revision()
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


# --- data migrations ------------------------------------------------------------------------

MIGRATION_KEY = "KOfPUTfqHRYbRCsfQLwFfIlwSdijxrLijOqLpzoBRGw="


def _insert_operator(engine: Engine, slug: str, wallet_secret: str, key_secret: str) -> None:
    with engine.begin() as conn:
        operator_id = conn.execute(
            text(
                "INSERT INTO operators (slug, currency, wallet_url, wallet_secret,"
                " refunds_enabled, cashback_enabled, created_at) VALUES (:slug, 'EUR',"
                " 'https://w.example/rpc', :secret, true, true, CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"slug": slug, "secret": wallet_secret},
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO api_keys (key_id, operator_id, secret, created_at)"
                " VALUES (:key_id, :operator_id, :secret, CURRENT_TIMESTAMP)"
            ),
            {"key_id": f"lk_{slug}", "operator_id": operator_id, "secret": key_secret},
        )


def test_the_upgrade_encrypts_the_secrets_already_stored(empty_postgres: str) -> None:
    box = SecretBox([MIGRATION_KEY])
    upgrade_database(empty_postgres, "0003")
    engine = create_engine(empty_postgres)
    try:
        _insert_operator(engine, "acme", "plain-wallet-secret", "plain-key-secret")

        upgrade_database(empty_postgres, secret_box=box)
        upgrade_database(empty_postgres, secret_box=box)  # again: nothing sealed twice

        with engine.connect() as conn:
            wallet = conn.execute(text("SELECT wallet_secret FROM operators")).scalar_one()
            key = conn.execute(text("SELECT secret FROM api_keys")).scalar_one()
        assert "plain" not in wallet and "plain" not in key
        assert (box.open(wallet), box.open(key)) == ("plain-wallet-secret", "plain-key-secret")
    finally:
        engine.dispose()


def test_the_upgrade_names_an_operator_slug_that_breaks_the_rule(empty_postgres: str) -> None:
    upgrade_database(empty_postgres, "0002")
    engine = create_engine(empty_postgres)
    try:
        _insert_operator(engine, "opa:cashback", "s", "s")
        with pytest.raises(RuntimeError, match=r"'opa:cashback'.*Rename"):
            upgrade_database(empty_postgres)
        assert current_revision(engine) == "0002"
    finally:
        engine.dispose()


def _operator_with(engine: Engine, slug: str, cashback_bps: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO operators (slug, currency, wallet_url, wallet_secret,"
                " refunds_enabled, cashback_enabled, cashback_bps, created_at) VALUES (:slug,"
                " 'EUR', 'https://w.example/rpc', 's', true, true, :bps, CURRENT_TIMESTAMP)"
            ),
            {"slug": slug, "bps": cashback_bps},
        )


@pytest.mark.parametrize(("slug", "bps"), [("acme", 10_001), ("acme", -1), ("opa:cashback", 0)])
def test_the_database_refuses_a_bound_that_onboarding_refuses(
    empty_postgres: str, slug: str, bps: int
) -> None:
    upgrade_database(empty_postgres)
    engine = create_engine(empty_postgres)
    try:
        _operator_with(engine, "fine", 10_000)  # the edge is allowed
        with pytest.raises(IntegrityError, match="ck_operators_"):
            _operator_with(engine, slug, bps)
    finally:
        engine.dispose()


def test_the_upgrade_names_cashback_above_the_whole_value(empty_postgres: str) -> None:
    upgrade_database(empty_postgres, "0004")
    engine = create_engine(empty_postgres)
    try:
        _operator_with(engine, "acme", 1_000_000)
        with pytest.raises(RuntimeError, match=r"above 10000.*'operators': 1"):
            upgrade_database(empty_postgres)
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()


def _box_at_0006(engine: Engine, statuses: tuple[str, ...] = ("active",)) -> int:
    """An operator's box with one version per status and one prize on the first: rows as
    revision 0006 holds them."""
    _operator_with(engine, "acme", 0)
    with engine.begin() as conn:
        box_id = conn.execute(
            text(
                "INSERT INTO boxes (operator_id, slug, created_at) SELECT id, 'gold',"
                " CURRENT_TIMESTAMP FROM operators RETURNING id"
            )
        ).scalar_one()
        for number, status in enumerate(statuses, start=1):
            version_id = conn.execute(
                text(
                    "INSERT INTO box_versions (box_id, version, name, price_minor, refundable,"
                    " cashback_enabled, content_hash, status, created_at) VALUES (:box, :n,"
                    " 'Gold', 500, true, true, 'h', :status, CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"box": box_id, "n": number, "status": status},
            ).scalar_one()
            if number == 1:
                conn.execute(
                    text(
                        "INSERT INTO prizes (box_version_id, position, name, value_minor, odds)"
                        " VALUES (:v, 0, 'Coin', 400, '1')"
                    ),
                    {"v": version_id},
                )
    return int(box_id)


def test_the_upgrade_makes_existing_prizes_digital_and_not_shippable(empty_postgres: str) -> None:
    upgrade_database(empty_postgres, "0006")
    engine = create_engine(empty_postgres)
    try:
        _box_at_0006(engine)
        upgrade_database(empty_postgres)
        with engine.connect() as conn:
            prize = conn.execute(text("SELECT type, image_url, shippable FROM prizes")).one()
            box = conn.execute(text("SELECT image, custom_attributes FROM boxes")).one()
        assert tuple(prize) == ("digital", None, False)
        assert tuple(box) == (None, {})
    finally:
        engine.dispose()


def test_the_upgrade_names_a_box_with_two_current_versions(empty_postgres: str) -> None:
    upgrade_database(empty_postgres, "0006")
    engine = create_engine(empty_postgres)
    try:
        box_id = _box_at_0006(engine, ("active", "inactive"))
        with pytest.raises(RuntimeError, match=rf"not superseded: \[{box_id}\]"):
            upgrade_database(empty_postgres)
        assert current_revision(engine) == "0006"
    finally:
        engine.dispose()
