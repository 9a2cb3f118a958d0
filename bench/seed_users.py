"""Seed many users into a PostgreSQL schema fast, for the scale benchmarks.

Rows go in through COPY (psycopg 3), not INSERTs, and every row carries one
argon2id hash of a known password, made once: hashing a million passwords at
the real cost would take hours, and a sign-in costs the same whichever row's
hash it checks. Rows are what ``AccountService.register`` would store:
display forms that ``clean_username``/``clean_email`` leave as they are,
keys and skeletons made by ``username_key``, ``username_skeleton`` and
``identity_key``, verified, active.

Usage (the schema is made and migrated with the shipped migrations first)::

    python bench/seed_users.py --count 1000000 --schema bench_users --keep

Without ``--keep`` the schema is dropped again at the end (a dry run of the
speed). ``users_scale.py`` imports the functions here.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import psycopg
from psycopg import sql

from flask_portcullis.identity import (
    clean_email,
    clean_username,
    identity_key,
    username_key,
    username_skeleton,
)
from flask_portcullis.passwords import PasswordHashing
from flask_portcullis.settings import Settings

PASSWORD = "correct horse battery staple"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 50_000  # rows per write to the COPY stream
COLUMNS = (
    "username",
    "username_key",
    "username_skeleton",
    "email",
    "email_key",
    "password_hash",
    "email_verified_at",
    "active",
    "created_at",
)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


def username(number: int) -> str:
    return f"user{number:07d}"


def email(number: int) -> str:
    return f"user{number:07d}@example.com"


def password_hash(settings: Settings | None = None) -> str:
    """Hash PASSWORD once, with the hasher and cost the app itself uses (default: OWASP)."""
    return PasswordHashing.from_settings(settings or Settings()).hash(PASSWORD)


def check_schema_name(schema: str) -> str:
    """Refuse anything but a plain lower-case identifier: it ends up in URLs and DDL."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and _")
    return schema


def sqlalchemy_url(schema: str, dsn: str = PG_DSN) -> str:
    """The app's database URL with ``schema`` first on the search path."""
    options = quote(f"-csearch_path={check_schema_name(schema)}", safe="")
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options={options}"


def create_schema(schema: str, dsn: str = PG_DSN) -> None:
    """Make an empty schema and apply the shipped migrations to it (``flask db upgrade``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(check_schema_name(schema))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env["FLASK_SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(schema, dsn)
    env["FLASK_SECRET_KEY"] = "migrations-only-" + "x" * 32
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "flask_portcullis.demo", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def drop_schema(schema: str, dsn: str = PG_DSN) -> None:
    """Drop the schema and everything in it (no-op when it is not there)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        name = sql.Identifier(check_schema_name(schema))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))


def _check_forms(number: int) -> None:
    """The generated forms must be stored as sign-up would store them."""
    if clean_username(username(number)) != username(number):
        raise AssertionError(f"{username(number)!r} is not in its stored form")
    if clean_email(email(number)) != email(number):
        raise AssertionError(f"{email(number)!r} is not in its stored form")


def _rows(count: int, hashed: str) -> Iterator[str]:
    """COPY text-format blocks of BATCH rows (no value holds a tab, newline or backslash)."""
    if any(ch in hashed for ch in "\t\n\\"):
        raise ValueError("the hash would need escaping in COPY text format")
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")  # naive UTC, as stored
    for start in range(0, count, BATCH):
        lines = []
        for number in range(start, min(start + BATCH, count)):
            name, address = username(number), email(number)
            key = username_key(name)
            lines.append(
                f"{name}\t{key}\t{username_skeleton(key)}\t{address}\t{identity_key(address)}"
                f"\t{hashed}\t{now}\tt\t{now}\n"
            )
        yield "".join(lines)


def seed(schema: str, count: int, hashed: str, dsn: str = PG_DSN) -> float:
    """COPY ``count`` users into ``schema``.users (already migrated); return the seconds taken."""
    for number in (0, count - 1):
        _check_forms(number)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        table = sql.Identifier(check_schema_name(schema), "users")
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for block in _rows(count, hashed):
                copy.write(block)
        conn.execute(sql.SQL("ANALYZE {}").format(table))
    return time.perf_counter() - started


def table_megabytes(schema: str, dsn: str = PG_DSN) -> float:
    """The users table with its indexes, in MiB."""
    with psycopg.connect(dsn) as conn:
        qualified = f"{check_schema_name(schema)}.users"
        row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (qualified,)).fetchone()
    return float(row[0]) / 2**20 if row else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--schema", default="bench_users")
    parser.add_argument("--dsn", default=PG_DSN, help="libpq URL of the database (default: test)")
    parser.add_argument("--keep", action="store_true", help="leave the schema for later use")
    args = parser.parse_args()
    create_schema(args.schema, args.dsn)
    try:
        seconds = seed(args.schema, args.count, password_hash(), args.dsn)
        size = table_megabytes(args.schema, args.dsn)
        print(
            f"{args.count:,} users in {args.schema}.users in {seconds:.1f} s "
            f"({args.count / seconds:,.0f} rows/s, {size:,.0f} MiB with indexes); "
            f"password: {PASSWORD!r}; app URL: {sqlalchemy_url(args.schema, args.dsn)}"
        )
    finally:
        if not args.keep:
            drop_schema(args.schema, args.dsn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
