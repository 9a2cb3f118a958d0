"""Shared fixtures: the demo app on a fresh SQLite file, a client, a CLI runner and helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.demo import MIGRATIONS, create_app
from flask_portcullis.models import UserMixin

PASSWORD = "correct horse battery staple"
# Cheap argon2id for speed; the real parameters are tested in test_passwords.py.
FAST_HASH = {
    "PORTCULLIS_ARGON2_TIME_COST": 1,
    "PORTCULLIS_ARGON2_MEMORY_COST": 64,
    "PORTCULLIS_ARGON2_PARALLELISM": 1,
}
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class FakeClock:
    """A clock the test moves by hand: the seam for every timeout test."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def make_app(tmp_path: Path, clock: FakeClock | None = None, **config: Any) -> Flask:
    """Build the demo app on its own SQLite file, migrated with the shipped migrations."""
    settings = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.db'}",
        **FAST_HASH,
        **config,
    }
    app = create_app(settings, instance_path=str(tmp_path / "instance"), clock=clock)
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS)
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    app = make_app(tmp_path, clock)
    yield app
    with app.app_context():
        get_state(app).db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def csrf_token(client: FlaskClient, path: str) -> str:
    """GET ``path`` and return the CSRF token of its form."""
    page = client.get(path)
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, f"no csrf_token on {path} (status {page.status_code})"
    return match.group(1)


def submit(client: FlaskClient, path: str, data: dict[str, Any], **kwargs: Any) -> TestResponse:
    """Fill in the form at ``path`` like a browser would: fetch it, then POST with its token."""
    token = csrf_token(client, path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def make_user(
    app: Flask,
    username: str = "ada",
    email: str = "ada@example.com",
    password: str = PASSWORD,
    roles: tuple[str, ...] = (),
    **kwargs: Any,
) -> int:
    """Create a user through the service layer and return the id."""
    with app.app_context():
        state = get_state(app)
        user = state.accounts.register(username, email, password, **kwargs)
        for role in roles:
            state.roles.ensure(role)
            state.roles.add_to_user(user, role)
        return user.id


def get_user(app: Flask, user_id: int) -> UserMixin | None:
    with app.app_context():
        return get_state(app).accounts.get(user_id)


def login(
    client: FlaskClient,
    identity: str = "ada",
    password: str = PASSWORD,
    *,
    remember: bool = False,
    path: str = "/login",
) -> TestResponse:
    data: dict[str, Any] = {"identity": identity, "password": password}
    if remember:
        data["remember"] = "y"
    return submit(client, path, data)


@pytest.fixture
def user(app: Flask) -> int:
    return make_user(app)


@pytest.fixture
def auth_client(client: FlaskClient, user: int) -> FlaskClient:
    """A client signed in as ``ada``."""
    response = login(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
