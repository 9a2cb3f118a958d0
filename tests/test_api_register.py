"""The JSON API's sign-up: ``POST /api/v1/register``."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .api_client import (
    assert_problem,
    body_of,
    error_fields,
    get,
    mailed_token,
    post,
    sign_in,
    sign_in_status,
    wait_for_mail,
)
from .conftest import (
    PASSWORD,
    REAL_LIMITS,
    AppFactory,
    Outbox,
    make_user,
)
from .rows import recent_events

# -- register ----------------------------------------------------------------------------------


def test_register_creates_the_account_and_mails_a_verification_link(
    app: Flask, api: FlaskClient, outbox: Outbox
) -> None:
    response = post(
        api, "/register", {"username": "grace", "email": "grace@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    user = body_of(response)
    assert user["username"] == "grace"
    assert user["email"] == "grace@example.com"
    assert user["email_verified"] is False
    assert user["roles"] == []
    assert datetime.fromisoformat(user["created_at"]).tzinfo is not None
    assert "password" not in json.dumps(user)
    token = mailed_token(outbox, "grace@example.com", "/verify-email/")
    assert token
    assert "account-created" in recent_events(app, user["id"])
    # The new account can sign in at once (verification is optional by default).
    sign_in(api, "grace")


def test_register_refuses_a_taken_username_or_address(api: FlaskClient, user: int) -> None:
    taken_name = post(
        api, "/register", {"username": "ADA", "email": "new@example.com", "password": PASSWORD}
    )
    body = assert_problem(taken_name, 409, "username_taken")
    assert error_fields(body) == {"username"}
    taken_address = post(
        api, "/register", {"username": "newbie", "email": "Ada@Example.com", "password": PASSWORD}
    )
    body = assert_problem(taken_address, 409, "email_taken")
    assert error_fields(body) == {"email"}
    assert "ada" not in body["detail"].lower()  # does not say whose address it is


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "too short"),
        ("password1234", "a common password"),
        ("grace@example.com", "the email address itself"),
    ],
)
def test_register_applies_the_password_policy_per_field(
    api: FlaskClient, password: str, why: str
) -> None:
    response = post(
        api, "/register", {"username": "grace", "email": "grace@example.com", "password": password}
    )
    body = assert_problem(response, 422, "password_rejected")
    assert error_fields(body) == {"password"}, why
    assert all(error["message"] for error in body["errors"])
    assert sign_in_status(api, "grace", password) == 401  # nothing was created


def test_register_rejects_an_unusable_address_per_field(api: FlaskClient) -> None:
    response = post(
        api, "/register", {"username": "grace", "email": "not-an-address", "password": PASSWORD}
    )
    body = assert_problem(response, 422, "invalid_field")
    assert error_fields(body) == {"email"}


def test_register_is_limited_per_client_with_retry_after(make_demo_app: AppFactory) -> None:
    api = make_demo_app(**REAL_LIMITS).test_client()
    for n in range(10):
        body = {"username": f"user{n}", "email": f"user{n}@example.com", "password": PASSWORD}
        assert post(api, "/register", body).status_code == 201
    body = {"username": "user10", "email": "user10@example.com", "password": PASSWORD}
    response = post(api, "/register", body)
    assert_problem(response, 429, "throttled")
    assert int(response.headers["Retry-After"]) > 0


def test_register_does_not_reveal_a_taken_address_when_verification_is_required(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(PORTCULLIS_EMAIL_VERIFICATION="required")
    make_user(app)
    api = app.test_client()
    fresh = post(
        api, "/register", {"username": "grace", "email": "grace@example.com", "password": PASSWORD}
    )
    taken = post(
        api, "/register", {"username": "mallory", "email": "ADA@example.com", "password": PASSWORD}
    )
    assert fresh.status_code == taken.status_code == 202
    assert fresh.get_data() == taken.get_data()
    assert "Set-Cookie" not in taken.headers
    # The newcomer gets a link; the owner of the taken address is told instead.
    mailed_token(outbox, "grace@example.com", "/verify-email/")
    wait_for_mail(outbox, "ada@example.com", lambda mail: "tried to sign up" in mail.subject)
    assert sign_in_status(api, "mallory", PASSWORD) == 401
    assert_problem(post(api, "/login", {"identity": "grace", "password": PASSWORD}), 403)


def test_closed_registration_is_refused_as_documented(make_demo_app: AppFactory) -> None:
    """Found by this suite: the 404 of a closed registration was not in the document."""
    api = make_demo_app(PORTCULLIS_REGISTRATION=False).test_client()
    response = post(
        api, "/register", {"username": "grace", "email": "grace@example.com", "password": PASSWORD}
    )
    assert response.status_code in (403, 404)
    assert_problem(response, response.status_code)
    assert sign_in_status(api, "grace", PASSWORD) == 401
    documented = body_of(get(api, "/openapi.json"))["paths"]["/register"]["post"]["responses"]
    assert str(response.status_code) in documented
