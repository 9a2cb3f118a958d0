"""The JSON API's emailed links: email verification, forgotten and reset passwords."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .api_client import (
    NEW_PASSWORD,
    assert_problem,
    body_of,
    error_fields,
    get,
    mailed_token,
    post,
    refresh,
    sign_in,
    sign_in_status,
    subjects,
)
from .conftest import (
    PASSWORD,
    FakeClock,
    Outbox,
    signed_in,
)
from .rows import recent_events

# -- email verification ------------------------------------------------------------------------


def test_verify_email_with_the_mailed_token(
    app: Flask, api: FlaskClient, user: int, outbox: Outbox
) -> None:
    token = sign_in(api)["access_token"]
    response = post(api, "/verify-email/request", token=token)
    assert response.status_code == 202
    assert "a***@example.com" in body_of(response)["detail"]
    link_token = mailed_token(outbox, "ada@example.com", "/verify-email/")
    verified = post(api, "/verify-email", {"token": link_token})
    assert verified.status_code == 200
    assert body_of(verified)["email_verified"] is True
    assert body_of(get(api, "/me", token=token))["email_verified"] is True
    assert "email-verified" in recent_events(app, user)
    # Already verified: nothing more is sent.
    again = post(api, "/verify-email/request", token=token)
    assert again.status_code == 202
    assert "already verified" in body_of(again)["detail"]
    assert len(subjects(outbox, "ada@example.com", "Confirm your email")) == 1


def test_verify_email_request_needs_a_token(api: FlaskClient, user: int, outbox: Outbox) -> None:
    assert_problem(post(api, "/verify-email/request"), 401, "unauthorized")
    assert outbox.to("ada@example.com") == []


def test_verify_email_resend_answers_the_same_for_any_address(
    api: FlaskClient, user: int, grace: int, outbox: Outbox
) -> None:
    """For a client that cannot sign in yet (sign-in answered email_not_verified)."""
    unknown = post(api, "/verify-email/resend", {"email": "nobody@example.com"})
    known = post(api, "/verify-email/resend", {"email": "ada@example.com"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.get_data() == known.get_data()
    link_token = mailed_token(outbox, "ada@example.com", "/verify-email/")
    assert outbox.to("nobody@example.com") == []
    assert body_of(post(api, "/verify-email", {"token": link_token}))["email_verified"] is True
    # Verified already: the same answer, and no mail.
    again = post(api, "/verify-email/resend", {"email": "ada@example.com"})
    assert again.get_data() == known.get_data()
    assert len(subjects(outbox, "ada@example.com", "Confirm your email")) == 1


def test_verify_email_request_is_limited_per_address(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    for _ in range(3):  # "3/hour" per address
        assert post(api, "/verify-email/request", token=token).status_code == 202
    response = post(api, "/verify-email/request", token=token)
    assert_problem(response, 429, "throttled")
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("token", ["nonsense", "a.b.c", "x" * 2048])
def test_verify_email_refuses_a_bad_token(api: FlaskClient, user: int, token: str) -> None:
    assert_problem(post(api, "/verify-email", {"token": token}), 400, "token_invalid")


def test_verify_email_refuses_an_expired_token(
    api: FlaskClient, user: int, outbox: Outbox, clock: FakeClock
) -> None:
    post(api, "/verify-email/request", token=sign_in(api)["access_token"])
    link_token = mailed_token(outbox, "ada@example.com", "/verify-email/")
    clock.advance(hours=25)
    assert_problem(post(api, "/verify-email", {"token": link_token}), 400, "token_expired")


# -- forgot / reset password -------------------------------------------------------------------


def test_forgot_password_answers_the_same_for_any_address(
    api: FlaskClient, user: int, outbox: Outbox
) -> None:
    unknown = post(api, "/forgot-password", {"email": "nobody@example.com"})
    known = post(api, "/forgot-password", {"email": "ada@example.com"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.get_data() == known.get_data()
    # Mails go out in order from one worker: when ada's has arrived, any other would have.
    outbox.wait_for("ada@example.com")
    assert outbox.to("nobody@example.com") == []


def test_reset_password_with_the_mailed_token_ends_every_session(
    app: Flask, api: FlaskClient, web: FlaskClient, user: int, outbox: Outbox
) -> None:
    pair = sign_in(api)
    assert post(api, "/forgot-password", {"email": "ada@example.com"}).status_code == 202
    token = mailed_token(outbox, "ada@example.com", "/reset-password/")
    response = post(api, "/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert not signed_in(web)
    assert sign_in_status(api, "ada", PASSWORD) == 401
    sign_in(api, "ada", NEW_PASSWORD)
    assert "password-reset" in recent_events(app, user)
    # The link works once.
    again = post(api, "/reset-password", {"token": token, "password": "yet another passphrase"})
    assert_problem(again, 400, "token_invalid")


def test_reset_password_applies_the_policy(api: FlaskClient, user: int, outbox: Outbox) -> None:
    post(api, "/forgot-password", {"email": "ada@example.com"})
    token = mailed_token(outbox, "ada@example.com", "/reset-password/")
    response = post(api, "/reset-password", {"token": token, "password": "short"})
    body = assert_problem(response, 422, "password_rejected")
    assert error_fields(body) == {"password"}
    # The refused password did not use the link up (a sign-in would: it changes the account).
    ok = post(api, "/reset-password", {"token": token, "password": NEW_PASSWORD})
    assert ok.status_code == 204
    sign_in(api, "ada", NEW_PASSWORD)


def test_reset_password_refuses_a_bad_token(api: FlaskClient, user: int) -> None:
    response = post(api, "/reset-password", {"token": "forged", "password": NEW_PASSWORD})
    assert_problem(response, 400, "token_invalid")
    sign_in(api)
