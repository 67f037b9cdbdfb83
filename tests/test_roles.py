"""The PostgreSQL database (decision 52): a role per bureau, each working in its own schema and refused in
another's; a demo that replaces only a demo's schemas."""
from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from urllib.parse import urlparse

import psycopg
import pytest

from aggregates.clock import SimulatedClock
from aggregates.database import (
    apply_roles,
    close_pools,
    create_schema,
    roles_sql,
    schema_location,
    schemas_with_prefix,
)
from aggregates.store import BureauStore, CatalogueRegistry
from broker.ledger.store import Ledger
from tests.conftest import StoreLocations
from tests.test_ledger_store import item
from tests.test_signing import make_signer
from tests.test_store import send
from xiezhu.demo import DemoError, prepare_schemas


def as_role(database_url: str, role: str, prefix: str) -> str:
    """The URL a machine of ``role`` is given: the same database, its own role (trust auth here: no password)."""
    u = urlparse(database_url)
    return u._replace(netloc=f"{role}@{u.hostname}:{u.port or 5432}", query=f"schema={prefix}").geturl()


def test_the_roles_sql_names_each_bureau_and_grants_nothing_across() -> None:
    text = roles_sql(["shenpi", "gongan"])
    assert "CREATE ROLE xiezhu_shenpi LOGIN" in text and "CREATE ROLE xiezhu_sifa LOGIN" in text
    assert "ALTER SCHEMA xiezhu_shenpi OWNER TO xiezhu_shenpi;" in text
    assert "ALTER SCHEMA xiezhu__ledger OWNER TO xiezhu_sifa;" in text
    grants = [line for line in text.splitlines() if line.startswith("GRANT")]
    assert grants and all(" xiezhu__catalogue " in g for g in grants)  # the catalogue is the one thing shared
    assert not [line for line in text.splitlines() if "PASSWORD" in line and not line.startswith("--")]


@pytest.mark.postgres
def test_a_bureaus_role_works_in_its_own_schema_and_cannot_read_another_bureaus(
        store_location: StoreLocations) -> None:
    url = store_location.database_url
    if url is None:
        pytest.skip("roles are PostgreSQL's: SQLite files are kept apart by the machines they are on")
    prefix = f"t{store_location.tag}"
    roles = [f"{prefix}_{code}" for code in ("shenpi", "gongan", "sifa")]
    apply_roles(url, roles_sql(["shenpi", "gongan"], prefix=prefix))
    shenpi, gongan, sifa = (as_role(url, role, prefix) for role in roles)
    clock = SimulatedClock(datetime(2026, 12, 1, 2, tzinfo=UTC))
    try:
        with closing(CatalogueRegistry(schema_location(sifa, "_catalogue"), clock)):
            pass  # 区司法局's machine makes the catalogue's table; the bureaus use it
        with closing(Ledger(schema_location(sifa, "_ledger"))) as ledger:
            assert ledger.append([item()]) == [1]
        with closing(CatalogueRegistry(schema_location(shenpi, "_catalogue"), clock)) as catalogue:
            assert catalogue.state("assistance").latest is None  # a bureau's role reads the catalogue
        store = BureauStore("shenpi", schema_location(shenpi, "shenpi"), make_signer("shenpi").sign, clock)
        try:
            send(store)  # its own role writes its own schema
        finally:
            store.close()
        with psycopg.connect(urlparse(gongan)._replace(query="").geturl(), autocommit=True) as conn:
            for table in (f"{prefix}_shenpi.bureaustore_events", f"{prefix}__ledger.entries",
                          f"{prefix}__sla._positions"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT * FROM {table}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"CREATE TABLE {prefix}_shenpi.planted (x int)")
            assert conn.execute(f"SELECT COUNT(*) FROM {prefix}__catalogue.catalogueregistry_events").fetchone()
        with psycopg.connect(urlparse(shenpi)._replace(query="").geturl(), autocommit=True) as conn:
            assert conn.execute(f"SELECT COUNT(*) FROM {prefix}_shenpi.bureaustore_events").fetchone()[0] > 0
    finally:
        close_pools()
        with psycopg.connect(url, autocommit=True) as conn:
            for role in roles:
                conn.execute(f"DROP OWNED BY {role} CASCADE")
                conn.execute(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_a_demo_on_a_database_replaces_a_demos_schemas_and_refuses_a_deployments(
        store_location: StoreLocations) -> None:
    url = store_location.database_url
    if url is None:
        pytest.skip("a demo on SQLite replaces its data directory (tested with the demo)")
    prefix = f"t{store_location.tag}"
    store_location.schemas.append(prefix)  # what the test leaves (the demo's mark) is dropped afterwards
    demo_url = f"{url}?schema={prefix}"
    create_schema(schema_location(demo_url, "shenpi"))  # a deployment's store
    with pytest.raises(DemoError, match="not a demo's"):
        prepare_schemas(demo_url)
    assert schemas_with_prefix(url, prefix) == [f"{prefix}_shenpi"]  # untouched
    create_schema(schema_location(demo_url, "_demo"))  # what an earlier demo leaves: its mark
    prepare_schemas(demo_url)
    assert schemas_with_prefix(url, prefix) == [f"{prefix}__demo"]
