"""The database servers a test may run on: one ``Server`` per backend, which makes databases
of this run's own and drops them afterwards. The ``server`` fixture (conftest) gives one per
backend; ``BACKENDS`` are its parameters.

- ``sqlite``: files in a temporary folder (always runs);
- ``postgresql``: ``postgresql+psycopg://postgres@127.0.0.1:5432`` (marked ``services``);
- ``mariadb``: ``mysql+pymysql://root@127.0.0.1:3306`` (marked ``services``).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from .services import require_service

# One id per test run: every database this run creates carries it, and no other run's does.
RUN_ID = secrets.token_hex(4)
# Shared by every Server (other modules use the fixture too), so no two databases share a name.
NUMBERS = itertools.count()
PG_HOST, PG_PORT = "127.0.0.1", 5432
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306
# The maintenance database each server already has; CREATE/DROP DATABASE run from there.
ADMIN_URLS = {
    "postgresql": f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test",
    "mariadb": f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/test?charset=utf8mb4",
}
URL_TEMPLATES = {
    "postgresql": f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{{name}}",
    "mariadb": f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{{name}}?charset=utf8mb4",
}
SERVICE_ADDRESSES = {
    "postgresql": ("PostgreSQL", PG_HOST, PG_PORT),
    "mariadb": ("MariaDB", MARIADB_HOST, MARIADB_PORT),
}
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.services),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.services),
]


@dataclass
class Server:
    """One backend for this run: makes uniquely named databases and drops them all at the end."""

    backend: str
    folder: Path
    admin: sa.Engine | None = None  # None for SQLite: a database is a file
    created: list[str] = field(default_factory=list)

    def create_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"portcullis_{RUN_ID}_{next(NUMBERS)}"
        if self.admin is None:
            return f"sqlite:///{self.folder / (name + '.db')}"
        quoted = self.admin.dialect.identifier_preparer.quote_identifier(name)
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
        self.created.append(name)
        return URL_TEMPLATES[self.backend].format(name=name)

    def drop_databases(self) -> None:
        """Drop every database this run created on the server (no-op for SQLite)."""
        if self.admin is None:
            return
        preparer = self.admin.dialect.identifier_preparer
        # FORCE ends connections a failed test may have leaked, so DROP never hangs.
        force = " WITH (FORCE)" if self.backend == "postgresql" else ""
        with self.admin.connect() as conn:
            while self.created:
                name = self.created.pop()
                quoted = preparer.quote_identifier(name)
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))


def admin_engine(backend: str) -> sa.Engine:
    """Connect to the server's maintenance database (skip or fail if it does not answer)."""
    name, host, port = SERVICE_ADDRESSES[backend]
    engine = sa.create_engine(
        ADMIN_URLS[backend], isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )

    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        require_service(name, host, port, probe)
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def database_server(backend: str, folder: Path) -> Iterator[Server]:
    """The backend's server for as long as the block runs; its databases go afterwards."""
    admin = None if backend == "sqlite" else admin_engine(backend)
    server = Server(backend, folder, admin)
    try:
        yield server
    finally:
        try:
            server.drop_databases()
        finally:
            if admin is not None:
                admin.dispose()
