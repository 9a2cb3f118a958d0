"""Registration, sign-in and sign-out through the HTML forms."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import user_logged_in, user_logged_out
from sqlalchemy.exc import OperationalError

from flask_portcullis import get_state

from .conftest import (
    PASSWORD,
    csrf_token,
    deactivate,
    login,
    make_user,
    submit,
    without_challenges,
)
from .rows import count, get_user

NEW = {
    "username": "grace",
    "email": "grace@example.com",
    "password": PASSWORD,
    "password_confirm": PASSWORD,
}


def home_text(client: FlaskClient) -> str:
    return client.get("/").get_data(as_text=True)


def test_register_signs_the_new_user_in(app: Flask, client: FlaskClient) -> None:
    response = submit(client, "/register", NEW)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "signed in as <strong>grace</strong>" in home_text(client)
    with app.app_context():
        user = get_state(app).accounts.get_by_identity("grace")
        assert user is not None
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        assert not user.email_verified


@pytest.mark.parametrize(
    ("change", "field_error"),
    [
        ({"username": ""}, "Enter your username."),
        ({"username": "g"}, "Use 3 to 32 letters"),
        ({"username": "grace hopper"}, "Use only letters, digits"),
        ({"email": "not-an-email"}, "Enter a valid email address"),
        ({"password_confirm": "something else"}, "Passwords differ."),
        ({"password": "password1", "password_confirm": "password1"}, "too common"),
        ({"password": "grace", "password_confirm": "grace"}, "Use at least 8 characters."),
        ({"password": "GRACE@example.com", "password_confirm": "GRACE@example.com"}, "Do not use"),
    ],
)
def test_register_errors_are_shown_next_to_the_field(
    app: Flask, client: FlaskClient, change: dict[str, str], field_error: str
) -> None:
    response = submit(client, "/register", {**NEW, **change})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error in page
    assert 'aria-invalid="true"' in page
    assert count(app, "users") == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"username": "ADA"}, "That username is already taken."),
        ({"username": "\uff41\uff44\uff41"}, "That username is already taken."),  # full-width
        ({"email": "ADA@example.com"}, "cannot be used for a new account"),
    ],
)
def test_register_refuses_taken_identities_case_insensitively(
    app: Flask, client: FlaskClient, user: int, change: dict[str, str], message: str
) -> None:
    response = submit(client, "/register", {**NEW, **change})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(app, "users") == 1


def test_register_form_has_autocomplete_hints_and_labels(client: FlaskClient) -> None:
    page = client.get("/register").get_data(as_text=True)
    assert 'autocomplete="username"' in page
    assert 'autocomplete="new-password"' in page
    for field in ("username", "email", "password", "password_confirm"):
        assert f'<label for="{field}">' in page


@pytest.mark.parametrize(
    "identity", ["ada", "ADA", "ada@example.com", "Ada@Example.COM", "\uff41da"]
)
def test_login_by_username_or_email_ignoring_case(
    client: FlaskClient, user: int, identity: str
) -> None:
    response = login(client, identity)
    assert response.status_code == 302
    assert "signed in as <strong>ada</strong>" in home_text(client)


def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: FlaskClient, user: int
) -> None:
    wrong_password = login(client, "ada", "not the password at all")
    unknown_user = login(client, "nobody", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 422
    assert "Incorrect username, email or password." in wrong_password.get_data(as_text=True)
    strip = str.maketrans("", "", "0123456789")

    def body(response: Any) -> str:
        text: str = response.get_data(as_text=True)
        # The CSRF token and the passkey challenge differ per render; nothing else may.
        text = text.replace(csrf_token_of(text), "")
        text = without_challenges(text)
        # The identity field keeps what was typed.
        return text.replace('value="nobody"', "").replace('value="ada"', "").translate(strip)

    assert body(wrong_password) == body(unknown_user)
    assert "You are not signed in." in home_text(client)


def csrf_token_of(page: str) -> str:
    marker = 'name="csrf_token" type="hidden" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_deactivated_account_cannot_sign_in(app: Flask, client: FlaskClient, user: int) -> None:
    deactivate(app, user)
    response = login(client)
    assert response.status_code == 422
    assert "deactivated" in response.get_data(as_text=True)
    # A wrong password says nothing about the account's state.
    assert "deactivated" not in login(client, "ada", "wrong password").get_data(as_text=True)


@pytest.mark.parametrize(
    ("next_param", "landing"),
    [
        ("/account", "/account"),
        ("/account/password?x=1", "/account/password?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_is_honoured_only_for_same_site_paths(
    client: FlaskClient, user: int, next_param: str, landing: str
) -> None:
    path = "/login?" + __import__("urllib.parse").parse.urlencode({"next": next_param})
    response = login(client, path=path)
    assert response.status_code == 302
    assert response.headers["Location"] == landing


def test_login_without_csrf_token_is_refused(client: FlaskClient, user: int) -> None:
    response = client.post("/login", data={"identity": "ada", "password": PASSWORD})
    assert response.status_code in (400, 422)
    assert "You are not signed in." in home_text(client)


def test_logout_get_only_shows_a_button(auth_client: FlaskClient) -> None:
    page = auth_client.get("/logout")
    assert page.status_code == 200
    assert '<button type="submit">Sign out</button>' in page.get_data(as_text=True)
    assert auth_client.get("/account").status_code == 200


def test_logout_post_signs_out(auth_client: FlaskClient) -> None:
    response = submit(auth_client, "/logout", {})
    assert response.status_code == 302
    assert auth_client.get("/account").status_code == 302
    assert "not signed in" in home_text(auth_client)


def test_logout_post_without_csrf_token_keeps_the_session(auth_client: FlaskClient) -> None:
    response = auth_client.post("/logout")
    assert response.status_code in (400, 422)
    assert auth_client.get("/account").status_code == 200


def test_flask_login_signals_fire(app: Flask, client: FlaskClient, user: int) -> None:
    seen: list[str] = []

    def on_login(sender: Flask, user: Any, **extra: Any) -> None:
        seen.append(f"in:{user.username}")

    def on_logout(sender: Flask, user: Any, **extra: Any) -> None:
        seen.append(f"out:{user.username}")

    with user_logged_in.connected_to(on_login, app), user_logged_out.connected_to(on_logout, app):
        login(client)
        submit(client, "/logout", {})
    assert seen == ["in:ada", "out:ada"]


def test_signed_in_user_visiting_login_is_sent_on(auth_client: FlaskClient) -> None:
    assert auth_client.get("/login").status_code == 302
    assert auth_client.get("/register").status_code == 302


def test_login_records_the_time(app: Flask, client: FlaskClient, user: int) -> None:
    login(client)
    account = get_user(app, user)
    assert account is not None
    assert account.last_login_at is not None


def test_csrf_token_is_present_on_every_form(auth_client: FlaskClient) -> None:
    for path in ("/logout", "/account/password", "/account/delete"):
        assert csrf_token(auth_client, path)
    submit(auth_client, "/logout", {})
    for path in ("/register", "/login"):
        assert csrf_token(auth_client, path)


def test_logout_page_when_anonymous(client: FlaskClient) -> None:
    assert "You are not signed in" in client.get("/logout").get_data(as_text=True)


def test_a_second_account_can_register(app: Flask, client: FlaskClient, user: int) -> None:
    assert submit(client, "/register", NEW).status_code == 302
    make_user(app, "zed", "zed@example.com")
    assert count(app, "users") == 3


def test_no_silent_truncation_of_long_passwords(app: Flask, client: FlaskClient) -> None:
    long_password = "a long passphrase " * 5  # 90 characters: past bcrypt's 72-byte limit
    make_user(app, password=long_password)
    assert login(client, password=long_password[:72] + "x" * 18).status_code == 422
    assert login(client, password=long_password).status_code == 302


# -- a sign-in is one transaction ----------------------------------------------------------------


def sign_in_rows(app: Flask, user_id: int) -> tuple[int, int, int]:
    """The user's sessions, sign-in audit rows and trusted devices, from the database."""
    return (
        count(app, "user_sessions", user_id=user_id),
        count(app, "audit_events", user_id=user_id, event="sign-in"),
        count(app, "trusted_devices", user_id=user_id),
    )


def test_a_sign_in_stores_its_session_audit_row_and_device_together(
    app: Flask, client: FlaskClient, user: int
) -> None:
    assert sign_in_rows(app, user) == (0, 0, 0)
    assert login(client).status_code == 302
    assert sign_in_rows(app, user) == (1, 1, 1)


def test_a_sign_in_that_fails_to_store_its_session_stores_nothing(
    app: Flask, client: FlaskClient, user: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session is the last write of the sign-in's one transaction: when it fails, the
    audit row and the trusted device staged before it go too, and the visitor gets the
    outage page (not a 500) and no session."""
    state = get_state(app)

    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT INTO user_sessions", {}, Exception("disk I/O error"))

    monkeypatch.setattr(state.sessions.store, "add", broken)
    response = login(client)
    assert response.status_code == 503
    assert sign_in_rows(app, user) == (0, 0, 0)
    monkeypatch.undo()
    assert "You are not signed in." in home_text(client)


def test_the_sign_out_button_reuses_its_signed_csrf_token_for_a_minute(
    auth_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every signed-in page carries the sign-out form; its token is signed once a minute per
    browser, not on every page, and still signs the browser out."""
    from flask_portcullis.web import csrf

    def token() -> str:
        page = auth_client.get("/account").get_data(as_text=True)
        found = re.search(
            r'portcullis-sign-out">\s*<input type="hidden" name="csrf_token" '
            r'value="([^"]+)"',
            page,
        )
        assert found, page
        return found.group(1)

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    first = token()
    now[0] += csrf.REUSE_SECONDS - 1
    assert token() == first
    now[0] += 2
    time.sleep(1.1)  # the token's own timestamp (whole seconds) moves on
    second = token()
    assert second != first
    response = auth_client.post("/logout", data={"csrf_token": first})  # older: still valid
    assert response.status_code == 302
    assert auth_client.get("/account").status_code == 302
