"""``/healthz`` and the 503 page shown when the database or Redis is down."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .. import health
from ..exceptions import Unavailable
from ..state import get_state
from .blueprints import bp

logger = logging.getLogger("flask_portcullis")
RETRY_AFTER = "30"
BUGS_NOT_OUTAGES = (IntegrityError, DataError, ProgrammingError)


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness and reachability as JSON: 200 when everything answers, else 503."""
    state = get_state()
    checks = health.checks(
        state.db.engine,
        state.models.User,
        state.throttle if state.settings.redis_url else None,
        state.sessions.store,
    )
    ok = all(value == "ok" for value in checks.values())
    body = jsonify(status="ok" if ok else "unavailable", checks=checks)
    return body, 200 if ok else 503, {"Cache-Control": "no-store"}


def unavailable(error: Exception) -> ResponseReturnValue:
    """A clear 503 page, never a stack trace; the page itself needs no database."""
    if isinstance(error, BUGS_NOT_OUTAGES):
        raise error  # a constraint or SQL error is a bug to see, not an outage to wait out
    if not isinstance(error, Unavailable):
        logger.error("service unavailable: %s", error.__class__.__name__, exc_info=error)
    try:
        get_state().db.session.rollback()  # nothing half-written survives the request
    except Exception:  # the connection may be gone entirely
        logger.debug("rollback after outage failed", exc_info=True)
    # Rendered without context processors: Flask-Login's would load current_user.
    page = current_app.jinja_env.get_template("portcullis/unavailable.html").render()
    return page, 503, {"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"}


def init_app(app: Flask) -> None:
    for error in (DatabaseError, InterfaceError, PoolTimeout, Unavailable):
        app.register_error_handler(error, unavailable)
