"""Usernames under RFC 8265 PRECIS keys, with a unique UTS #39 skeleton.

Existing rows are kept, never deleted or renamed: each key is recomputed
under the new profile where it differs (unless another account already has
the new key), and each row gets the skeleton of its key. When a skeleton is
already held by an earlier account, the later one stores it with "#<id>"
appended, so the unique index holds, and the pair is reported (and listed by
``flask portcullis doctor`` from then on).

Revision ID: 0007_username_skeleton
Revises: 0006_audit_sign_in_index
Create Date: 2026-11-23
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from flask_portcullis.exceptions import FieldError
from flask_portcullis.identity import identity_key, username_key, username_skeleton

revision = "0007_username_skeleton"
down_revision = "0006_audit_sign_in_index"
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")

SKELETON_MAX = 255
INDEX = "ix_users_username_skeleton"
BATCH = 1000

users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("username", sa.String()),
    sa.column("username_key", sa.String()),
    sa.column("username_skeleton", sa.String()),
)


def key_string(length: int) -> sa.types.TypeEngine[str]:
    # Skeletons compare byte for byte (MariaDB's default collation ignores accents).
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("username_skeleton", key_string(SKELETON_MAX), nullable=True))
    # NULLs do not collide, so the index can stand (and serve the look-ups below) at once.
    op.create_index(INDEX, "users", ["username_skeleton"], unique=True)
    _backfill(op.get_bind())
    _require_skeleton()


def downgrade() -> None:
    op.drop_index(INDEX, table_name="users")
    _rebuild_users(lambda batch: batch.drop_column("username_skeleton"))
    # Back to the NFKC-casefold keys the code before this revision looks names up by.
    bind = op.get_bind()
    for rows in _batches(bind):
        _move_keys(bind, [(row.id, row.username, row.username_key, _old_key(row)) for row in rows])


def _old_key(row: Any) -> str:
    return identity_key(row.username)


def _require_skeleton() -> None:
    _rebuild_users(
        lambda batch: batch.alter_column(
            "username_skeleton", existing_type=key_string(SKELETON_MAX), nullable=False
        )
    )


def _rebuild_users(change: Callable[[Any], None]) -> None:
    """Apply ``change`` in a batch (SQLite copies the table) and keep SQLite's id sequence.

    AUTOINCREMENT never reuses a deleted user's id; the copy would forget the highest id
    handed out unless the sequence is carried over.
    """
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    sequence = None
    if sqlite:
        sequence = bind.execute(
            sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'users'")
        ).scalar()
    with op.batch_alter_table("users", table_kwargs={"sqlite_autoincrement": True}) as batch:
        change(batch)
    if sqlite and sequence is not None:
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'users' AND seq < :seq"),
            {"seq": sequence},
        )


def _batches(bind: sa.Connection) -> Any:
    """Every user row, in id order, a batch at a time (keyset pagination)."""
    last = 0
    while True:
        rows = bind.execute(
            sa.select(users.c.id, users.c.username, users.c.username_key)
            .where(users.c.id > last)
            .order_by(users.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _new_key(row: Any) -> str:
    try:
        return username_key(row.username)
    except FieldError:
        return str(row.username_key)  # a name the profile refuses keeps its key (and signs in)


def _backfill(bind: sa.Connection) -> None:
    for rows in _batches(bind):
        keys = _move_keys(bind, [(r.id, r.username, r.username_key, _new_key(r)) for r in rows])
        _store_skeletons(bind, [(r.id, r.username, keys[r.id]) for r in rows])


def _move_keys(bind: sa.Connection, rows: Sequence[tuple[int, str, str, str]]) -> dict[int, str]:
    """Give each (id, username, key, wanted key) row its wanted key unless another row has it.

    Return every row's key afterwards. A refused move is reported: that user keeps
    signing in by email, and by the old form of the name.
    """
    wanted = {wanted for _, _, key, wanted in rows if wanted != key}
    holders = dict(
        bind.execute(
            sa.select(users.c.username_key, users.c.username).where(
                users.c.username_key.in_(wanted)
            )
        ).all()
        if wanted
        else []
    )
    result: dict[int, str] = {}
    moves = []
    for user_id, username, key, new in rows:
        result[user_id] = key
        if new == key:
            continue
        if new in holders:
            logger.warning(
                "username %r (id %s) keeps its key %r: %r already has the key %r",
                username,
                user_id,
                key,
                holders[new],
                new,
            )
            continue
        holders[new] = username
        result[user_id] = new
        moves.append({"row_id": user_id, "new_key": new})
    if moves:
        bind.execute(
            users.update()
            .where(users.c.id == sa.bindparam("row_id"))
            .values(username_key=sa.bindparam("new_key")),
            moves,
        )
    return result


def _store_skeletons(bind: sa.Connection, rows: Sequence[tuple[int, str, str]]) -> None:
    """Store each (id, username, key) row's skeleton; a look-alike of an earlier row gets
    "#<id>" appended and is reported."""
    skeletons = {user_id: username_skeleton(key) for user_id, _, key in rows}
    earlier = dict(
        bind.execute(
            sa.select(users.c.username_skeleton, users.c.username).where(
                users.c.username_skeleton.in_(set(skeletons.values()))
            )
        ).all()
    )
    values = []
    for user_id, username, _ in rows:
        skeleton = skeletons[user_id]
        if skeleton in earlier:
            logger.warning(
                "look-alike usernames: %r (id %s) looks like %r; both accounts are kept, "
                "list them with `flask portcullis doctor`",
                username,
                user_id,
                earlier[skeleton],
            )
            skeleton = f"{skeleton}#{user_id}"
        else:
            earlier[skeleton] = username
        values.append({"row_id": user_id, "skeleton": skeleton})
    bind.execute(
        users.update()
        .where(users.c.id == sa.bindparam("row_id"))
        .values(username_skeleton=sa.bindparam("skeleton")),
        values,
    )
