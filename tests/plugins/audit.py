"""pytest fixtures: audit (registered in tests/conftest.py).

``audit_settings`` is parametrised over both backends: SQLite in the test's data directory and
the real PostgreSQL server (database ``test``) in a schema private to the test, dropped after it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_unavailable
from xorj_actors.audit import AnchorSettings, AuditSettings, PostgresSettings, ensure_bucket, s3_client

PG = {"host": "127.0.0.1", "port": 5432, "dbname": "test", "user": "postgres"}
#: The HMAC key the tests put in the environment (48 bytes).
TEST_KEY = "test-audit-hmac-key-0123456789abcdef0123456789ab"


def pg_connect() -> Any:
    """A raw psycopg2 connection to the test database (autocommit), or skip/fail if absent."""
    import psycopg2

    try:
        conn = psycopg2.connect(connect_timeout=3, **PG)
    except psycopg2.OperationalError as exc:
        service_unavailable(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")
    conn.autocommit = True
    return conn


def lose_database(settings: AuditSettings, data_dir: Path) -> None:
    """The disaster: the SQLite files deleted, or the PostgreSQL schema dropped."""
    if settings.backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{data_dir / settings.sqlite_path}{suffix}").unlink(missing_ok=True)
        return
    conn = pg_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{settings.postgres.schema}" CASCADE')
    finally:
        conn.close()


@pytest.fixture
def audit_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The audit HMAC key, also set in ``XORJ_AUDIT_HMAC_KEY``."""
    monkeypatch.setenv("XORJ_AUDIT_HMAC_KEY", TEST_KEY)
    return TEST_KEY.encode()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped (with its tables) after the test."""
    name = f"audit_test_{uuid.uuid4().hex[:12]}"
    conn = pg_connect()
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            # Backends the test left behind (a writer thread still retrying) must not hold locks.
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.close()


def postgres_settings(schema: str, **overrides: Any) -> AuditSettings:
    """AuditSettings for the local PostgreSQL server in ``schema``."""
    pg = PostgresSettings(
        host="127.0.0.1", port=5432, database="test", user="postgres", schema=schema, application_name=schema,
        statement_timeout_s=0.5,
    )
    return AuditSettings(backend="postgres", postgres=pg, **overrides)


@pytest.fixture(params=["sqlite", "postgres"])
def audit_settings(request: pytest.FixtureRequest, audit_key: bytes) -> AuditSettings:
    """Settings for each backend, with fast retries so fail-closed tests stay short."""
    fast = {"retry_initial_s": 0.02, "retry_max_s": 0.2, "sqlite_busy_timeout_s": 0.2}
    if request.param == "postgres":
        return postgres_settings(request.getfixturevalue("pg_schema"), **fast)
    return AuditSettings(**fast)


def _sql_on(settings: AuditSettings, data_dir: Path) -> tuple[Any, Callable[..., list[tuple]]]:
    """A raw connection to the audit store and ``run(table, sql, *params)`` on it, ``{t}`` the
    quoted ``table`` (in the test's schema on PostgreSQL), ``?`` the parameters."""
    if settings.backend == "sqlite":
        conn: Any = sqlite3.connect(data_dir / settings.sqlite_path, isolation_level=None)
        schema, param = "", "?"
    else:
        conn = pg_connect()
        schema, param = f'"{settings.postgres.schema}".', "%s"

    def run(table: str, sql: str, *params: Any) -> list[tuple]:
        cur = conn.cursor()
        cur.execute(sql.replace("{t}", f'{schema}"{table}"').replace("?", param), params)
        rows = cur.fetchall() if cur.description else []
        cur.close()
        return rows

    return conn, run


@pytest.fixture
def raw_sql(audit_settings: AuditSettings, data_dir: Path) -> Iterator[Callable[..., list[tuple]]]:
    """Run SQL on the audit store behind peewee's back (tampering); ``{t}`` is the table."""
    conn, run = _sql_on(audit_settings, data_dir)
    yield lambda sql, *params: run("audit_entries", sql, *params)
    conn.close()


@pytest.fixture
def chain_sql(audit_settings: AuditSettings, data_dir: Path) -> Iterator[Callable[..., list[tuple]]]:
    """:func:`raw_sql` on one chain's table: ``run(chain, sql, *params)``."""
    conn, run = _sql_on(audit_settings, data_dir)
    yield lambda chain, sql, *params: run("audit_entries" if chain == "default" else f"audit_entries_{chain}", sql, *params)
    conn.close()


@pytest.fixture
def anchor_settings(ministack_endpoint: str, aws_env: None) -> AnchorSettings:
    """Anchoring to a fresh Object Lock bucket on the session's ministack."""
    settings = AnchorSettings(
        enabled=True,
        endpoint_url=ministack_endpoint,
        bucket=f"audit-{uuid.uuid4().hex[:16]}",
        prefix="audit/",
        interval_s=0.2,
        retention_days=1,
    )
    ensure_bucket(s3_client(settings), settings)
    return settings
