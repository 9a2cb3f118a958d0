"""The signed-in user's own pages: profile, password, export, deletion."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state
from flask_portcullis.passkeys import RelyingParty

from .conftest import PASSWORD, login, submit
from .rows import get_user
from .soft_authenticator import SoftAuthenticator

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


EXPORT_FIELDS = [
    "username",
    "email",
    "email_verified_at",
    "active",
    "created_at",
    "last_login_at",
    "roles",
    "sessions",
    "activity",
    "passkeys",
    "trusted_devices",
    "sign_in_providers",
]


def test_export_has_every_part_in_a_fixed_order_and_shape(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    with app.app_context():
        state = get_state(app)
        ada = state.accounts.get(user)
        assert ada is not None
        state.roles.ensure("editor")
        state.roles.add_to_user(ada, "editor")
        rp = RelyingParty("localhost", "Portcullis tests", ("http://localhost",))
        ceremony = state.passkeys.registration_options(ada, rp)
        credential = SoftAuthenticator().create(ceremony.options)
        state.passkeys.register(ada, rp, credential, ceremony.challenge, "Work laptop")
    response = auth_client.get("/account/export")
    text = response.get_data(as_text=True)
    data = json.loads(text)
    assert list(data) == EXPORT_FIELDS
    assert text.startswith('{\n  "username": "ada",\n')  # indented, keys as assembled
    assert data["roles"] == ["editor"]
    [session] = data["sessions"]
    assert list(session) == ["created_at", "last_seen_at", "ip", "user_agent", "remember"]
    assert data["activity"], data
    assert all(
        list(row) == ["at", "event", "label", "ip", "user_agent"] for row in data["activity"]
    )
    assert data["activity"][0]["event"] == "sign-in"  # newest first
    assert data["activity"][0]["label"] == "Signed in"
    [passkey] = data["passkeys"]
    assert list(passkey) == ["name", "created_at", "last_used_at"]
    assert passkey["name"] == "Work laptop"
    [device] = data["trusted_devices"]
    assert list(device) == ["kind", "created_at", "last_used_at", "ip", "user_agent"]


def test_the_service_assembles_the_export_and_the_page_only_serialises_it(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    page = json.loads(auth_client.get("/account/export").get_data(as_text=True))
    with app.app_context():  # no request: the export is the service's, not the view's
        state = get_state(app)
        ada = state.accounts.get(user)
        assert ada is not None
        collected = state.export.collect(ada)
    assert json.loads(json.dumps(collected)) == collected  # plain JSON values only
    assert collected == page


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
