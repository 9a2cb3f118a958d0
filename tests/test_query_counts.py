"""Database round trips per request: counts are deterministic where times are not.

A signed-in page checks its server-side session (so revocation is immediate)
in one query that also brings the user and their roles; an anonymous page
needs none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state

from .conftest import FakeClock, login, make_app, make_user
from .rows import sql_statements


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs while the test watches."""
    with sql_statements(app) as seen:
        yield seen


@pytest.mark.parametrize("path", ["/", "/account", "/logout"])
def test_a_signed_in_page_costs_one_query(
    app: Flask, client: FlaskClient, statements: list[str], path: str
) -> None:
    make_user(app, roles=("admin",))  # the navigation then shows the Admin link
    login(client)
    client.get("/")  # the first request after sign-in is not the steady state
    statements.clear()
    page = client.get(path)
    assert page.status_code == 200
    assert ">Admin<" in page.get_data(as_text=True)
    assert len(statements) == 1, statements


@pytest.mark.parametrize("path", ["/", "/login", "/register"])
def test_an_anonymous_page_costs_no_query(
    client: FlaskClient, statements: list[str], path: str
) -> None:
    assert client.get(path).status_code == 200
    assert statements == []


def test_last_seen_is_written_at_most_once_a_minute(
    app: Flask, client: FlaskClient, clock: FakeClock, statements: list[str]
) -> None:
    make_user(app)
    login(client)
    statements.clear()
    for _ in range(5):
        clock.advance(seconds=10)
        client.get("/")
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert updates == []
    clock.advance(seconds=60)
    statements.clear()
    client.get("/")
    # The session lookup and the touch; the page reads the user it already loaded.
    assert len(statements) == 2, statements
    assert statements[1].lstrip().upper().startswith("UPDATE")


def test_a_removed_role_still_takes_effect_on_the_next_request(
    app: Flask, client: FlaskClient
) -> None:
    user_id = make_user(app, roles=("admin",))
    login(client)
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(user_id)
        assert user is not None
        state.roles.remove_from_user(user, "admin")
    assert client.get("/admin/").status_code == 403


def test_with_the_principal_bridge_permissions_cost_one_query_whatever_the_roles(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, PORTCULLIS_PRINCIPAL=True)
    make_user(app, roles=("admin", "editor", "auditor"))
    with app.app_context():
        roles = get_state(app).roles
        for role in ("admin", "editor", "auditor"):
            roles.grant_permission(role, f"{role}.read")
    client = app.test_client()
    login(client)
    client.get("/")
    with app.app_context():
        engine = get_state(app).db.engine
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/account").status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert len(seen) == 2, seen  # the session with user and roles; the roles' permissions
