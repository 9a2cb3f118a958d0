"""Sensitive pages want a recent password (OWASP ASVS 3.7.1), then bring the user back."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .conftest import (
    PASSWORD,
    AppFactory,
    FakeClock,
    csrf_token,
    login,
    make_user,
    submit,
)

SENSITIVE = ["/account/export", "/account/two-factor", "/account/recovery-codes"]


@pytest.mark.parametrize("path", SENSITIVE)
def test_fresh_after_sign_in(auth_client: FlaskClient, path: str) -> None:
    assert auth_client.get(path).status_code == 200


@pytest.mark.parametrize("path", SENSITIVE)
def test_stale_sign_in_asks_for_the_password_and_comes_back(
    auth_client: FlaskClient, clock: FakeClock, path: str
) -> None:
    clock.advance(minutes=11)
    response = auth_client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/reauthenticate?next=")
    wrong = submit(auth_client, response.headers["Location"], {"password": "not my password"})
    assert wrong.status_code == 422
    assert "That is not your current password." in wrong.get_data(as_text=True)
    right = submit(auth_client, response.headers["Location"], {"password": PASSWORD})
    assert right.status_code == 302
    assert right.headers["Location"] == path
    assert auth_client.get(path).status_code == 200


def test_still_fresh_within_the_window(auth_client: FlaskClient, clock: FakeClock) -> None:
    clock.advance(minutes=9)
    assert auth_client.get("/account/export").status_code == 200


def test_listing_devices_is_free_but_ending_one_is_not(
    auth_client: FlaskClient, clock: FakeClock
) -> None:
    clock.advance(minutes=11)
    assert auth_client.get("/account/sessions").status_code == 200
    token = csrf_token(auth_client, "/account/sessions")
    response = auth_client.post(
        "/account/sessions", data={"csrf_token": token, "session": "others"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/reauthenticate?next=/account/sessions"


def test_the_window_is_configurable(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, mail=False, PORTCULLIS_FRESH_LOGIN_WINDOW=60)
    make_user(app)
    client = app.test_client()
    login(client)
    clock.advance(seconds=59)
    assert client.get("/account/export").status_code == 200
    clock.advance(seconds=2)
    stale = client.get("/account/export")
    assert stale.status_code == 302
    assert stale.headers["Location"].startswith("/reauthenticate?next=")


def test_unsafe_next_after_reauthentication_goes_to_the_account(
    app: Flask, auth_client: FlaskClient
) -> None:
    response = submit(
        auth_client, "/reauthenticate?next=https://evil.example/", {"password": PASSWORD}
    )
    assert response.headers["Location"] == "/account"


def test_wrong_passwords_here_count_on_the_sign_in_lock(
    make_demo_app: AppFactory, clock: FakeClock
) -> None:
    app = make_demo_app(clock=clock, mail=False, PORTCULLIS_LOGIN_FREE_FAILURES=2)
    make_user(app)
    client = app.test_client()
    login(client)
    statuses = [
        submit(client, "/reauthenticate", {"password": "wrong password"}).status_code
        for _ in range(4)
    ]
    assert statuses[:3] == [422, 422, 422]
    assert statuses[3] == 429


def test_anonymous_visitors_sign_in_first(client: FlaskClient) -> None:
    response = client.get("/account/export")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/account/password", "current_password"),
        ("/account/email", "password"),
        ("/account/delete", "password"),
    ],
)
def test_current_password_forms_answer_429_once_locked(
    make_demo_app: AppFactory, clock: FakeClock, path: str, field: str
) -> None:
    """A throttled check is the 429 page, never dressed up as a form error."""
    app = make_demo_app(clock=clock, mail=False, PORTCULLIS_LOGIN_FREE_FAILURES=2)
    make_user(app)
    client = app.test_client()
    login(client)
    data = {
        "current_password": "wrong password",
        "new_password": "a new long passphrase",
        "new_password_confirm": "a new long passphrase",
        "email": "ada@new.example",
        "password": "wrong password",
    }
    statuses = [submit(client, path, data).status_code for _ in range(4)]
    assert statuses == [422, 422, 422, 429], field
