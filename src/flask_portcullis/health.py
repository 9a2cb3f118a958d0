"""Reachability of what the app depends on, for ``/healthz`` and ``flask portcullis doctor``."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from .exceptions import Unavailable
from .models import UserMixin
from .session_stores import SessionStore
from .throttling import Throttle

logger = logging.getLogger("flask_portcullis.health")


def database_ok(engine: Engine, user_model: type[UserMixin]) -> bool:
    """Read one row id from the users table: proves the server answers and the schema is there.

    (A bare ``SELECT 1`` passes on SQLite even when the file is unreadable.)
    """
    try:
        with engine.connect() as connection:
            connection.execute(select(user_model.id).limit(1))
    except SQLAlchemyError as exc:
        logger.error("database unreachable: %s", exc.__class__.__name__)
        return False
    return True


def store_ok(store: SessionStore) -> bool:
    """Whether the session store answers (the SQL store is the database: checked apart)."""
    try:
        store.ping()
    except Unavailable:
        return False
    return True


def checks(
    engine: Engine,
    user_model: type[UserMixin],
    throttle: Throttle | None,
    store: SessionStore | None = None,
) -> dict[str, str]:
    """Map each dependency to "ok" or "unreachable" (Redis only when it is configured: pass
    its throttle, else None; the session store when it is not the database)."""
    result = {"database": "ok" if database_ok(engine, user_model) else "unreachable"}
    if throttle is not None:
        result["redis"] = "ok" if throttle.healthy() else "unreachable"
    if store is not None and store.kind != "sql":
        result["session_store"] = "ok" if store_ok(store) else "unreachable"
    return result
