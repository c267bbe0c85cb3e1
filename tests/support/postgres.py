"""A fresh PostgreSQL database per test run on the local server (never touches others)."""
from __future__ import annotations

import os
import uuid

PG_DSN = os.environ.get("YMDS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class PostgresUnavailable(Exception):
    pass


def create_database() -> str:
    """Create ``ymds_test_<random>`` and return its URL; raise PostgresUnavailable loudly."""
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover
        raise PostgresUnavailable("psycopg is not installed: pip install -e '.[postgres]'") from e
    name = "ymds_test_" + uuid.uuid4().hex[:12]
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        raise PostgresUnavailable(f"no PostgreSQL server at {PG_DSN}: {e}") from e
    return PG_DSN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg
    name = url.rsplit("/", 1)[1]
    assert name.startswith("ymds_test_")
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
