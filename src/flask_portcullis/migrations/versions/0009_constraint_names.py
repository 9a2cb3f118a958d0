"""Name every constraint by the naming convention (models.NAMING_CONVENTION).

Revisions 0001-0005 left unique and foreign-key constraints unnamed, so each
database named them its own way (PostgreSQL ``users_email_key_key``, MariaDB
``user_roles_ibfk_1``, SQLite none at all), and a later batch migration could
not drop or alter them. Rows are untouched: PostgreSQL renames in place,
MariaDB renames unique keys and re-creates foreign keys under their new name,
SQLite copies each table once with the names in it (foreign keys are off
during migrations, so the copy cascades nothing).

Revision ID: 0009_constraint_names
Revises: 0008_trusted_devices
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009_constraint_names"
down_revision = "0008_trusted_devices"
branch_labels = None
depends_on = None

CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Tables whose constraints 0001-0005 left unnamed (trusted_devices was born named).
TABLES = (
    "users",
    "roles",
    "permissions",
    "user_sessions",
    "user_roles",
    "role_permissions",
    "audit_events",
    "refresh_tokens",
    "two_factor",
    "recovery_codes",
    "passkeys",
)
AUTOINCREMENT = ("users", "audit_events")  # SQLite must keep their id sequences


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in TABLES:
            _copy_with_names(bind, table)
        return
    inspector = sa.inspect(bind)
    for table in TABLES:
        for old, new, kind, fk in _renames(inspector, table):
            if bind.dialect.name == "postgresql":
                op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{old}" TO "{new}"')
            elif kind == "uq":
                op.execute(f"ALTER TABLE {table} RENAME INDEX `{old}` TO `{new}`")
            elif fk is not None:
                op.drop_constraint(old, table, type_="foreignkey")
                op.create_foreign_key(
                    new,
                    table,
                    fk["referred_table"],
                    fk["constrained_columns"],
                    fk["referred_columns"],
                    ondelete=fk["options"].get("ondelete"),
                )


def downgrade() -> None:
    """Names stay: every revision before this one works with named constraints."""


def _renames(inspector: Any, table: str) -> list[tuple[str, str, str, Any]]:
    """(old name, conventional name, kind, foreign key) for each constraint named otherwise."""
    found: list[tuple[str, str, str, Any]] = []
    pk = inspector.get_pk_constraint(table)
    # MariaDB calls every primary key PRIMARY, and it cannot be renamed.
    if pk.get("name") and pk["name"] not in ("PRIMARY", f"pk_{table}"):
        found.append((pk["name"], f"pk_{table}", "pk", None))
    for unique in inspector.get_unique_constraints(table):
        if unique["name"].startswith("ix_"):  # a unique index (MariaDB lists those here too)
            continue
        new = f"uq_{table}_{unique['column_names'][0]}"
        if unique["name"] != new:
            found.append((unique["name"], new, "uq", None))
    for fk in inspector.get_foreign_keys(table):
        new = f"fk_{table}_{fk['constrained_columns'][0]}_{fk['referred_table']}"
        if fk["name"] != new:
            found.append((fk["name"], new, "fk", fk))
    return found


def _copy_with_names(bind: sa.Connection, table: str) -> None:
    """SQLite keeps names only in CREATE TABLE: copy the table, naming what it reflects."""
    sequence = None
    if table in AUTOINCREMENT:
        sequence = bind.execute(
            sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}
        ).scalar()
    with op.batch_alter_table(
        table,
        recreate="always",
        naming_convention=CONVENTION,
        table_kwargs={"sqlite_autoincrement": table in AUTOINCREMENT},
    ):
        pass
    if sequence is not None:
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :t AND seq < :seq"),
            {"seq": sequence, "t": table},
        )
