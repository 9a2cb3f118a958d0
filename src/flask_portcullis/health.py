"""Reachability of what the app depends on, for ``/healthz`` and ``flask portcullis doctor``."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .state import State

logger = logging.getLogger("flask_portcullis.health")


def database_ok(state: State) -> bool:
    """Read one row id from the users table: proves the server answers and the schema is there.

    (A bare ``SELECT 1`` passes on SQLite even when the file is unreadable.)
    """
    User = state.models.User
    try:
        with state.db.engine.connect() as connection:
            connection.execute(select(User.id).limit(1))
    except SQLAlchemyError as exc:
        logger.error("database unreachable: %s", exc.__class__.__name__)
        return False
    return True


def checks(state: State) -> dict[str, str]:
    """Map each dependency to "ok" or "unreachable" (Redis only when configured)."""
    result = {"database": "ok" if database_ok(state) else "unreachable"}
    if state.settings.redis_url:
        result["redis"] = "ok" if state.throttle.healthy() else "unreachable"
    return result
