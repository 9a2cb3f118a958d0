"""What an app stored, read back from its database: the one set of row helpers for the suite.

Each opens its own app context, so it sees what earlier requests committed and nothing a
request left in its session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.models import UserMixin


def count(app: Flask, table: str, **where: Any) -> int:
    """Rows in ``table`` (whose columns equal ``where``), straight from the database."""
    with app.app_context():
        db = get_state(app).db
        t = db.metadata.tables[table]
        query = sa.select(sa.func.count()).select_from(t)
        for column, value in where.items():
            query = query.where(t.c[column] == value)
        with db.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def get_user(app: Flask, user_id: int) -> UserMixin | None:
    with app.app_context():
        return get_state(app).accounts.get(user_id)


def session_count(app: Flask, user_id: int) -> int:
    """The user's signed-in sessions, as the service lists them."""
    with app.app_context():
        return len(get_state(app).sessions.list_for(user_id))


def stored_two_factor(app: Flask, user_id: int) -> tuple[int, int]:
    """How many two_factor and recovery_codes rows (used or not) the user has."""
    return count(app, "two_factor", user_id=user_id), count(app, "recovery_codes", user_id=user_id)


def stored_passkeys(app: Flask, user_id: int) -> tuple[int, int]:
    """How many passkeys and recovery_codes rows (used or not) the user has."""
    return count(app, "passkeys", user_id=user_id), count(app, "recovery_codes", user_id=user_id)


@dataclass(frozen=True)
class AuditRow:
    """One audit row, read back as plain values."""

    id: int
    at: datetime
    user_id: int | None
    event: str
    ip: str
    user_agent: str
    detail: dict[str, Any]


def audit_rows(app: Flask, event: Event | None = None) -> list[AuditRow]:
    """Every audit row (of one kind), oldest first."""
    with app.app_context():
        state = get_state(app)
        AuditEvent = state.models.AuditEvent
        query = sa.select(AuditEvent).order_by(AuditEvent.id)
        if event is not None:
            query = query.where(AuditEvent.event == str(event))
        return [
            AuditRow(r.id, r.at, r.user_id, r.event, r.ip, r.user_agent, json.loads(r.detail))
            for r in state.db.session.scalars(query)
        ]


def events(app: Flask, event: Event) -> list[tuple[int | None, dict[str, Any]]]:
    """(user id, detail) of every audit row of one kind, oldest first."""
    return [(row.user_id, row.detail) for row in audit_rows(app, event)]


def recent_events(app: Flask, user_id: int) -> list[str]:
    """The kinds of the user's recent audit rows, as the service lists them (newest first)."""
    with app.app_context():
        return [row.event for row in get_state(app).audit.recent(user_id)]


@contextmanager
def sql_statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs while the block runs."""
    seen: list[str] = []
    with app.app_context():
        engine = get_state(app).db.engine

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
