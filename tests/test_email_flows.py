"""Email verification, password reset, email change and notices, over a real SMTP server."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.mail import Message

from .conftest import (
    PASSWORD,
    AppFactory,
    FakeClock,
    Outbox,
    csrf_token,
    free_port,
    login,
    make_user,
    submit,
    text,
)
from .rows import get_user

NEW_PASSWORD = "a fresh and long passphrase"
REGISTRATION = {
    "username": "grace",
    "email": "grace@example.com",
    "password": PASSWORD,
    "password_confirm": PASSWORD,
}


def confirm(client: FlaskClient, path: str) -> TestResponse:
    """Open an emailed link, then press its button, as a person would."""
    return submit(client, path, {})


# -- verification ----------------------------------------------------------------------


def test_optional_verification_signs_in_and_sends_a_link(
    app: Flask, client: FlaskClient, outbox: Outbox
) -> None:
    assert submit(client, "/register", REGISTRATION).status_code == 302
    [mail] = outbox.wait_for("grace@example.com")
    assert mail.subject.startswith("Confirm your email address")
    assert "not verified" in text(client.get("/account"))
    link = mail.link("/verify-email/")
    assert link in mail.html

    page = client.get(link)  # opening the link changes nothing yet
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "not verified" in text(client.get("/account"))

    assert confirm(client, link).status_code == 302
    account = text(client.get("/account"))
    assert "not verified" not in account
    assert ">verified<" in account
    # Used once: the link is dead now, and its page says so before any button.
    assert client.get(link).status_code == 400
    assert "This link cannot be used" in text(client.get(link))


def test_required_verification_holds_sign_in_until_confirmed(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(PORTCULLIS_EMAIL_VERIFICATION="required")
    client = app.test_client()
    page = submit(client, "/register", REGISTRATION)
    assert page.status_code == 200
    assert "Check your inbox" in text(page)
    assert client.get("/account").status_code == 302  # not signed in
    outbox.wait_for("grace@example.com")

    refused = login(client, "grace")
    assert refused.status_code == 422
    assert "Confirm your email address before signing in." in text(refused)
    assert "Send me a new confirmation link" in text(refused)
    # A wrong password says nothing about verification.
    assert "Confirm your email" not in text(login(client, "grace", "wrong password here"))

    login(client, "grace")
    resent = client.post("/verify-email", data={"csrf_token": csrf_token(client, "/login")})
    assert resent.status_code == 302
    second = outbox.wait_for("grace@example.com", 2)[1]

    assert confirm(client, second.link("/verify-email/")).status_code == 302
    assert login(client, "grace").status_code == 302
    assert "not verified" not in text(client.get("/account"))


def test_verification_off_sends_nothing_and_shows_nothing(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(PORTCULLIS_EMAIL_VERIFICATION="off")
    client = app.test_client()
    assert submit(client, "/register", REGISTRATION).status_code == 302
    account = text(client.get("/account"))
    assert "verified" not in account
    make_user(app, "zed", "zed@example.com")
    submit(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    outbox.wait_for("grace@example.com")  # the password notice still goes out
    assert [m.subject for m in outbox.to("grace@example.com")] == [
        "Your password was changed · Portcullis demo"
    ]


def test_resend_from_the_account_page(app: Flask, auth_client: FlaskClient, outbox: Outbox) -> None:
    response = auth_client.post(
        "/verify-email", data={"csrf_token": csrf_token(auth_client, "/account")}
    )
    assert response.status_code == 302
    [mail] = outbox.wait_for("ada@example.com")
    assert confirm(auth_client, mail.link("/verify-email/")).status_code == 302
    user = get_user(app, 1)
    assert user is not None
    assert user.email_verified


def test_verification_link_dies_when_the_address_changes(
    app: Flask, auth_client: FlaskClient, outbox: Outbox
) -> None:
    auth_client.post("/verify-email", data={"csrf_token": csrf_token(auth_client, "/account")})
    [verify] = outbox.wait_for("ada@example.com")
    submit(auth_client, "/account/email", {"email": "ada@new.example", "password": PASSWORD})
    [change] = outbox.wait_for("ada@new.example")
    assert confirm(auth_client, change.link("/confirm-email/")).status_code == 302
    assert confirm(auth_client, verify.link("/verify-email/")).status_code == 400


# -- password reset ----------------------------------------------------------------------


def ask_reset(client: FlaskClient, address: str) -> TestResponse:
    return submit(client, "/forgot-password", {"email": address})


def reset_link(
    app: Flask, client: FlaskClient, outbox: Outbox, address: str = "ada@example.com"
) -> str:
    ask_reset(client, address)
    [mail] = outbox.wait_for(address)
    return mail.link("/reset-password/")


def test_forgot_password_answers_alike_for_known_and_unknown_addresses(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    unknown = ask_reset(client, "nobody@example.com")
    known = ask_reset(client, "ADA@example.com")
    assert unknown.status_code == known.status_code == 200
    assert text(unknown) == text(known)
    [mail] = outbox.wait_for("ada@example.com")
    assert mail.subject.startswith("Reset your password")
    assert outbox.to("nobody@example.com") == []  # sent in order: it would be here by now


def test_forgot_password_mail_is_sent_off_the_request(
    app: Flask, client: FlaskClient, user: int
) -> None:
    """The answer cannot wait for the mail server: known and unknown cost the same."""
    release, sent = threading.Event(), threading.Event()

    class SlowSender:
        def send(self, message: Message) -> None:
            release.wait(timeout=5)
            sent.set()

    get_state(app).notifier.sender = SlowSender()
    assert ask_reset(client, "ada@example.com").status_code == 200
    assert not sent.is_set()  # the response came back while the mail was still held
    release.set()
    assert sent.wait(timeout=5)


def test_reset_sets_a_new_password_and_ends_every_session(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    phone = app.test_client()
    login(phone)
    link = reset_link(app, client, outbox)
    page = client.get(link)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    client.get(link)  # opening it twice does not use it up

    done = submit(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert done.status_code == 302
    assert done.headers["Location"] == "/login"
    assert done.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/account").status_code == 302  # nobody was signed in
    assert phone.get("/account").status_code == 302  # and everyone was signed out
    assert login(client, password=PASSWORD).status_code == 422
    assert login(client, password=NEW_PASSWORD).status_code == 302

    notice = outbox.wait_for("ada@example.com", 2)[1]
    assert notice.subject.startswith("Your password was reset")
    assert "127.0.0.1" in notice.text
    assert "When:" in notice.text


def test_reset_password_follows_the_policy(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    link = reset_link(app, client, outbox)
    weak = submit(client, link, {"password": "password1", "password_confirm": "password1"})
    assert weak.status_code == 422
    assert "too common" in text(weak)
    assert login(client).status_code == 302  # unchanged


def test_reset_link_works_once(app: Flask, client: FlaskClient, user: int, outbox: Outbox) -> None:
    link = reset_link(app, client, outbox)
    submit(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    again = client.get(link)
    assert again.status_code == 400
    assert "/forgot-password" in text(again)
    # With a valid form, so the refusal is the link's, not the CSRF check's.
    form = csrf_token(client, "/forgot-password")
    new = {"csrf_token": form, "password": "x" * 20, "password_confirm": "x" * 20}
    reused = client.post(link, data=new)
    assert reused.status_code == 400
    assert "/forgot-password" in text(reused)
    assert "CSRF" not in text(reused)
    assert login(client, password=NEW_PASSWORD).status_code == 302


def test_reset_link_dies_after_a_password_change(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    link = reset_link(app, client, outbox)
    login(client)
    submit(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert client.get(link).status_code == 400


def test_reset_link_expires(
    app: Flask, clock: FakeClock, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    link = reset_link(app, client, outbox)
    clock.advance(minutes=59)
    assert client.get(link).status_code == 200
    clock.advance(minutes=2)
    expired = client.get(link)
    assert expired.status_code == 410
    assert "expired" in text(expired)
    assert "/forgot-password" in text(expired)


def test_link_lifetimes_are_configurable(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app(
        clock=clock,
        PORTCULLIS_RESET_PASSWORD_LIFETIME=300,
        PORTCULLIS_VERIFY_EMAIL_LIFETIME=600,
    )
    client = app.test_client()
    assert submit(client, "/register", REGISTRATION).status_code == 302
    [mail] = outbox.wait_for("grace@example.com")
    verify = mail.link("/verify-email/")
    make_user(app)
    reset = reset_link(app, app.test_client(), outbox)
    clock.advance(seconds=299)
    assert client.get(reset).status_code == 200
    assert client.get(verify).status_code == 200
    clock.advance(seconds=2)
    assert client.get(reset).status_code == 410
    assert client.get(verify).status_code == 200
    clock.advance(seconds=300)
    assert client.get(verify).status_code == 410


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: t.replace(".", ".x", 1),
        lambda t: "not-a-token",
    ],
    ids=["signature", "payload", "garbage"],
)
def test_tampered_reset_links_are_refused(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox, tamper: Any
) -> None:
    link = reset_link(app, client, outbox)
    token = link.rsplit("/", 1)[1]
    forged = "/reset-password/" + tamper(token)
    assert client.get(forged).status_code == 400
    form = csrf_token(client, "/forgot-password")
    new = {"csrf_token": form, "password": "x" * 20, "password_confirm": "x" * 20}
    refused = client.post(forged, data=new)
    assert refused.status_code == 400
    assert "/forgot-password" in text(refused)
    assert "CSRF" not in text(refused)
    assert login(client).status_code == 302  # the password is unchanged


def test_a_link_for_one_purpose_is_refused_for_another(
    app: Flask, auth_client: FlaskClient, outbox: Outbox
) -> None:
    auth_client.post("/verify-email", data={"csrf_token": csrf_token(auth_client, "/account")})
    [mail] = outbox.wait_for("ada@example.com")
    token = mail.link("/verify-email/").rsplit("/", 1)[1]
    assert auth_client.get("/reset-password/" + token).status_code == 400


def test_links_survive_secret_key_rotation(make_demo_app: AppFactory, outbox: Outbox) -> None:
    old = make_demo_app(SECRET_KEY="old-secret-" + "o" * 32)
    make_user(old)
    link = reset_link(old, old.test_client(), outbox)
    rotated = make_demo_app(
        SECRET_KEY="new-secret-" + "n" * 32,
        SECRET_KEY_FALLBACKS=["old-secret-" + "o" * 32],
    )
    assert rotated.test_client().get(link).status_code == 200
    forgotten = make_demo_app(SECRET_KEY="new-secret-" + "n" * 32)
    assert forgotten.test_client().get(link).status_code == 400


# -- email change ------------------------------------------------------------------------


def change_email(client: FlaskClient, address: str, password: str = PASSWORD) -> TestResponse:
    return submit(client, "/account/email", {"email": address, "password": password})


def test_email_change_is_confirmed_on_the_new_address(
    app: Flask, auth_client: FlaskClient, user: int, outbox: Outbox
) -> None:
    response = change_email(auth_client, "Ada.Lovelace@New.Example")
    assert response.status_code == 302
    [confirmation] = outbox.wait_for("Ada.Lovelace@new.example")
    [notice] = outbox.wait_for("ada@example.com")
    assert "A***@new.example" in notice.text
    assert "Ada.Lovelace@new.example" not in notice.text
    assert "/forgot-password" in notice.text
    assert "ada@example.com" in text(auth_client.get("/account"))  # not changed yet

    link = confirmation.link("/confirm-email/")
    assert auth_client.get(link).headers["Referrer-Policy"] == "no-referrer"
    assert confirm(app.test_client(), link).status_code == 302  # works from any browser
    account = text(auth_client.get("/account"))
    assert "Ada.Lovelace@new.example" in account
    assert ">verified<" in account
    assert confirm(auth_client, link).status_code == 400  # once only
    assert login(app.test_client(), "ada.lovelace@new.example").status_code == 302


@pytest.mark.parametrize(
    ("address", "password", "field_error"),
    [
        ("ada@new.example", "wrong password here", "That is not your current password."),
        ("bob@example.com", PASSWORD, "cannot be used"),
        ("BOB@example.com", PASSWORD, "cannot be used"),
        ("ada@example.com", PASSWORD, "already your email address"),
        ("not-an-address", PASSWORD, "Enter a valid email address"),
    ],
)
def test_email_change_errors_send_nothing(
    app: Flask,
    auth_client: FlaskClient,
    outbox: Outbox,
    address: str,
    password: str,
    field_error: str,
) -> None:
    make_user(app, "bob", "bob@example.com")
    response = change_email(auth_client, address, password)
    assert response.status_code == 422
    assert field_error in text(response)
    assert outbox.mails == []


def test_email_change_loses_a_race_cleanly(
    app: Flask, auth_client: FlaskClient, outbox: Outbox
) -> None:
    change_email(auth_client, "shared@example.com")
    [mail] = outbox.wait_for("shared@example.com")
    make_user(app, "eve", "shared@example.com")  # someone took the address meanwhile
    response = confirm(auth_client, mail.link("/confirm-email/"))
    assert response.status_code == 302
    assert "ada@example.com" in text(auth_client.get("/account"))


# -- notices ---------------------------------------------------------------------------


def test_password_change_notice_names_time_ip_and_browser(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    client.environ_base["HTTP_USER_AGENT"] = "NoticeBrowser/9.1"
    login(client)
    submit(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    [notice] = outbox.wait_for("ada@example.com")
    assert notice.subject.startswith("Your password was changed")
    for expected in ("NoticeBrowser/9.1", "127.0.0.1", "2026-01-01 12:00 UTC", "/forgot-password"):
        assert expected in notice.text
    assert "NoticeBrowser/9.1" in notice.html


# -- when the mail server is down --------------------------------------------------------


@pytest.fixture
def down_app(make_demo_app: AppFactory) -> Flask:
    return make_demo_app(MAIL_PORT=free_port(), MAIL_TIMEOUT=2)


def test_mail_server_down_registration_still_works_and_says_so(down_app: Flask) -> None:
    client = down_app.test_client()
    response = submit(client, "/register", REGISTRATION, follow_redirects=True)
    assert response.status_code == 200
    assert "could not send the confirmation email" in text(response).replace("&#39;", "'")
    assert "signed in as <strong>grace</strong>" in text(client.get("/"))


def test_mail_server_down_resend_is_a_clear_error(down_app: Flask) -> None:
    make_user(down_app)
    client = down_app.test_client()
    login(client)
    response = client.post(
        "/verify-email",
        data={"csrf_token": csrf_token(client, "/account")},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "We could not send the email. Please try again." in text(response)


def test_mail_server_down_email_change_changes_nothing(down_app: Flask) -> None:
    user_id = make_user(down_app)
    client = down_app.test_client()
    login(client)
    response = change_email(client, "ada@new.example")
    assert response.status_code == 422
    assert "We could not send the email. Please try again." in text(response)
    user = get_user(down_app, user_id)
    assert user is not None
    assert user.email == "ada@example.com"


def test_mail_server_down_password_change_still_completes(down_app: Flask) -> None:
    make_user(down_app)
    client = down_app.test_client()
    login(client)
    response = submit(
        client,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert login(down_app.test_client(), password=NEW_PASSWORD).status_code == 302


def test_mail_server_down_forgot_password_answers_as_usual(down_app: Flask) -> None:
    make_user(down_app)
    response = ask_reset(down_app.test_client(), "ada@example.com")
    assert response.status_code == 200
    assert "Check your inbox" in text(response)


# -- throttling ------------------------------------------------------------------------


def test_reset_mails_are_throttled_per_address(
    app: Flask, client: FlaskClient, user: int, outbox: Outbox
) -> None:
    for _ in range(3):
        assert ask_reset(client, "ada@example.com").status_code == 200
    outbox.wait_for("ada@example.com", 3)
    other_client = app.test_client()
    throttled = ask_reset(other_client, "Ada@Example.com")
    assert throttled.status_code == 429
    assert 3000 < int(throttled.headers["Retry-After"]) <= 3600
    assert "Please try again in 60 minutes." in text(throttled)
    # Unknown addresses are throttled the same way: a 429 tells nothing.
    for _ in range(3):
        ask_reset(other_client, "nobody@example.com")
    assert ask_reset(other_client, "nobody@example.com").status_code == 429


def test_mail_requests_are_throttled_per_client(app: Flask, client: FlaskClient) -> None:
    for n in range(10):
        assert ask_reset(client, f"person{n}@example.com").status_code == 200
    assert ask_reset(client, "one-more@example.com").status_code == 429


def test_throttling_can_be_switched_off(make_demo_app: AppFactory) -> None:
    app = make_demo_app(RATELIMIT_ENABLED=False)
    client = app.test_client()
    for _ in range(12):
        assert ask_reset(client, "nobody@example.com").status_code == 200


# -- what is kept and logged ---------------------------------------------------------------


def test_tokens_are_neither_stored_nor_logged(
    app: Flask,
    client: FlaskClient,
    user: int,
    outbox: Outbox,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    link = reset_link(app, client, outbox)
    token = link.rsplit("/", 1)[1]
    with sqlite3.connect(tmp_path / "test.db") as db:
        dump = "\n".join(db.iterdump())
    assert token not in dump
    assert token not in caplog.text


def test_links_use_server_name_when_set(make_demo_app: AppFactory, outbox: Outbox) -> None:
    app = make_demo_app(
        SERVER_NAME="accounts.example.org",
        PREFERRED_URL_SCHEME="https",
    )
    make_user(app)
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get_by_identity("ada")
        assert user is not None
        state.notifier.verification(user, state.links.verification_token(user))
    [mail] = outbox.wait_for("ada@example.com")
    assert "https://accounts.example.org/verify-email/" in mail.text


def test_console_delivery_prints_the_whole_message(
    make_demo_app: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_demo_app(mail=False)  # no MAIL_SERVER
    client = app.test_client()
    submit(client, "/register", REGISTRATION)
    printed = capsys.readouterr().out
    assert "To: grace@example.com" in printed
    assert "Subject: Confirm your email address" in printed
    assert "http://localhost/verify-email/" in printed


def test_mail_server_from_the_environment(
    make_demo_app: AppFactory,
    smtp_server: tuple[Outbox, int],
    outbox: Outbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FLASK_MAIL_SERVER / FLASK_MAIL_PORT, as an operator sets them, deliver real mail."""
    monkeypatch.setenv("FLASK_MAIL_SERVER", "127.0.0.1")
    monkeypatch.setenv("FLASK_MAIL_PORT", str(smtp_server[1]))
    app = make_demo_app(mail=False)
    assert submit(app.test_client(), "/register", REGISTRATION).status_code == 302
    [mail] = outbox.wait_for("grace@example.com")
    assert mail.link("/verify-email/")
