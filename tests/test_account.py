"""The signed-in user's own pages: profile, password, export, deletion."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state

from .conftest import PASSWORD, login, submit
from .rows import get_user

NEW_PASSWORD = "an entirely new passphrase"


@pytest.mark.parametrize(
    "path", ["/account", "/account/password", "/account/delete", "/account/export"]
)
def test_anonymous_visitors_are_sent_to_login_with_next(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=" + path.replace("/", "%2F")


def test_profile_shows_username_email_and_verification(auth_client: FlaskClient) -> None:
    page = auth_client.get("/account").get_data(as_text=True)
    assert "ada" in page
    assert "ada@example.com" in page
    assert "not verified" in page


def test_change_password(app: Flask, auth_client: FlaskClient) -> None:
    response = submit(
        auth_client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    submit(auth_client, "/logout", {})
    assert login(auth_client, password=PASSWORD).status_code == 422
    assert login(auth_client, password=NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"current_password": "wrong password here"}, "That is not your current password."),
        ({"new_password": "password123", "new_password_confirm": "password123"}, "too common"),
        ({"new_password_confirm": "different"}, "Passwords differ."),
        ({"new_password": "short", "new_password_confirm": "short"}, "Use at least 8"),
    ],
)
def test_change_password_errors(
    app: Flask, auth_client: FlaskClient, user: int, fields: dict[str, str], error: str
) -> None:
    before = get_user(app, user)
    assert before is not None
    data = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
        **fields,
    }
    response = submit(auth_client, "/account/password", data)
    assert response.status_code == 422
    assert error in response.get_data(as_text=True)
    after = get_user(app, user)
    assert after is not None
    assert after.password_hash == before.password_hash
    assert auth_client.get("/account").status_code == 200


def test_export_is_the_users_own_data_without_secrets(app: Flask, auth_client: FlaskClient) -> None:
    response = auth_client.get("/account/export")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["username"] == "ada"
    assert data["email"] == "ada@example.com"
    assert len(data["sessions"]) == 1
    text = response.get_data(as_text=True)
    assert "argon2" not in text
    assert "password" not in text
    with app.app_context():
        [record] = get_state(app).sessions.list_for(1)
        assert record.id not in text


def test_delete_needs_the_password(app: Flask, auth_client: FlaskClient, user: int) -> None:
    response = submit(auth_client, "/account/delete", {"password": "not my password"})
    assert response.status_code == 422
    assert "That is not your current password." in response.get_data(as_text=True)
    assert get_user(app, user) is not None


def test_delete_removes_user_and_sessions(app: Flask, auth_client: FlaskClient, user: int) -> None:
    other_device = app.test_client()
    login(other_device)
    with app.app_context():
        state = get_state(app)
        state.roles.ensure("editor")
        account = state.accounts.get(user)
        assert account is not None
        state.roles.add_to_user(account, "editor")
    response = submit(auth_client, "/account/delete", {"password": PASSWORD})
    assert response.status_code == 302
    assert get_user(app, user) is None
    with app.app_context():
        assert list(get_state(app).sessions.list_for(user)) == []
    assert other_device.get("/account").status_code == 302
    assert auth_client.get("/account").status_code == 302
    assert login(auth_client).status_code == 422
