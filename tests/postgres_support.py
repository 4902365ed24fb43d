"""The live PostgreSQL server the scale-out tests use, and a fresh database per test.

The server is the one the machine runs (127.0.0.1:5432, trust auth); KETREG_TEST_POSTGRES overrides it with a
libpq URL of a role that may create databases and roles. A test skips, saying why, only when no server answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

SERVER_URL = os.environ.get("KETREG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class FreshDatabase:
    name: str
    url: str
    host: str
    port: int
    user: str


def _admin():
    import psycopg

    try:
        return psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {SERVER_URL} (set KETREG_TEST_POSTGRES): {exc}")


def fresh_database() -> Iterator[FreshDatabase]:
    """A database created for one test and dropped after it (with any session still connected)."""
    from psycopg.conninfo import conninfo_to_dict

    name = f"ketreg_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(SERVER_URL)
    host, port, user = str(params.get("host", "127.0.0.1")), int(params.get("port", 5432)), str(params["user"])
    try:
        yield FreshDatabase(name=name, url=f"postgresql://{user}@{host}:{port}/{name}", host=host, port=port, user=user)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
