"""The JSON API (``/api/v1``) through the test client: JSON in, JSON or problem+json out.

Access tokens are checked with joserfc against the published JWKS only (the package signs
with PyJWT; PyJWT appears here only to *forge* tokens, with keys built like the app's).
Time moves by the app's FakeClock: tokens carry its ``iat``/``exp`` and are verified
against it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, SecurityWarning
from joserfc.jwk import KeySet, KeySetSerialization
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.access_tokens import make_key

from .conftest import (
    LINK,
    PASSWORD,
    REAL_LIMITS,
    AppFactory,
    FakeClock,
    Mail,
    Outbox,
    login,
    make_user,
    signed_in,
)

API = "/api/v1"
PROBLEM = "application/problem+json"
ISSUER = "portcullis"
AUDIENCE = "portcullis-api"
NEW_PASSWORD = "a brand new passphrase for ada"
ORIGIN = "https://app.example.com"
SECRET = "a-secret-key-for-rotation-" + "z" * 32
OTHER_SECRET = "another-secret-key-" + "y" * 32
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}
# What the issue asks for, at least; the document must list exactly the blueprint's routes.
OPERATIONS = {
    ("post", "/register"),
    ("post", "/login"),
    ("post", "/refresh"),
    ("post", "/logout"),
    ("post", "/logout-everywhere"),
    ("get", "/me"),
    ("post", "/password"),
    ("post", "/verify-email/request"),
    ("post", "/verify-email"),
    ("post", "/forgot-password"),
    ("post", "/reset-password"),
    ("get", "/sessions"),
    ("delete", "/sessions/{session_id}"),
    ("get", "/jwks.json"),
}
BEARER_OPERATIONS = {
    ("post", "/logout-everywhere"),
    ("get", "/me"),
    ("post", "/password"),
    ("post", "/verify-email/request"),
    ("get", "/sessions"),
    ("delete", "/sessions/{session_id}"),
}


# -- helpers -----------------------------------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(
    client: FlaskClient, path: str, body: Any = None, *, token: str | None = None
) -> TestResponse:
    return client.post(API + path, json=body, headers=auth(token) if token else {})


def get(client: FlaskClient, path: str, *, token: str | None = None) -> TestResponse:
    return client.get(API + path, headers=auth(token) if token else {})


def body_of(response: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    return body


def sign_in(
    client: FlaskClient, identity: str = "ada", password: str = PASSWORD, **headers: str
) -> dict[str, Any]:
    """Sign in through the API and return the token pair."""
    response = client.post(
        API + "/login", json={"identity": identity, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return body_of(response)


def sign_in_status(client: FlaskClient, identity: str, password: str) -> int:
    return post(client, "/login", {"identity": identity, "password": password}).status_code


def refresh(client: FlaskClient, refresh_token: str) -> TestResponse:
    return post(client, "/refresh", {"refresh_token": refresh_token})


def assert_problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with a stable code, the right status, and no stack trace."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == PROBLEM, response.headers
    assert "Traceback" not in text
    assert 'File "' not in text
    body = body_of(response)
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert all(isinstance(body[name], str) for name in ("type", "title", "detail", "code"))
    assert isinstance(body.get("errors", []), list)
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_invalid_token(response: TestResponse) -> None:
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body["errors"]}


def wait_for_mail(outbox: Outbox, address: str, wanted: Callable[[Mail], bool]) -> list[Mail]:
    """Wait (bounded) for mails to ``address`` that ``wanted`` picks; other notices may come
    and go in between (some are sent in the background)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [mail for mail in outbox.to(address) if wanted(mail)]
        if found:
            return found
        time.sleep(0.02)
    subjects = [mail.subject for mail in outbox.to(address)]
    raise AssertionError(f"no such mail to {address}; got {subjects}")


def links(mail: Mail, prefix: str) -> list[str]:
    return [path for path in map(link_path, LINK.findall(mail.text)) if path.startswith(prefix)]


def link_path(url: str) -> str:
    return urlsplit(url).path


def mailed_token(outbox: Outbox, address: str, prefix: str) -> str:
    """The token at the end of the ``prefix`` link in the latest mail to ``address`` with one."""
    mail = wait_for_mail(outbox, address, lambda m: bool(links(m, prefix)))[-1]
    return mail.link(prefix).rsplit("/", 1)[1]


def subjects(outbox: Outbox, address: str, text: str) -> list[str]:
    return [mail.subject for mail in outbox.to(address) if text in mail.subject]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(value: Any) -> bytes:
    """JSON as JWT libraries write it (PyJWT too): no spaces, keys in the given order."""
    return json.dumps(value, separators=(",", ":")).encode()


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def assemble(header: dict[str, Any], claims: dict[str, Any], signature: bytes | str) -> str:
    signing_input = b64url(compact(header)) + "." + b64url(compact(claims))
    tail = signature if isinstance(signature, str) else b64url(signature)
    return signing_input + "." + tail


def hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token built by hand (PyJWT rightly refuses a public key as an HMAC secret)."""
    signing_input = assemble(header, claims, b"").rstrip(".")
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def verify_with_joserfc(
    token: str, jwks: dict[str, Any], algorithm: str, *, now: datetime, sub: int
) -> jose_jwt.Token:
    """Verify signature and claims with joserfc and the published keys only."""
    with warnings.catch_warnings():
        # RFC 9864 deprecates the name "EdDSA" (for "Ed25519"); the tokens still say EdDSA.
        warnings.filterwarnings(
            "ignore", message="EdDSA is deprecated via RFC 9864", category=SecurityWarning
        )
        token_obj = jose_jwt.decode(
            token, KeySet.import_key_set(cast(KeySetSerialization, jwks)), algorithms=[algorithm]
        )
    registry = jose_jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True, "value": str(sub)},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    )
    registry.validate(token_obj.claims)
    return token_obj


@pytest.fixture
def api(client: FlaskClient) -> FlaskClient:
    """A client that only speaks JSON to /api/v1 (never a form, never a cookie it was given)."""
    return client


@pytest.fixture
def web(app: Flask, user: int) -> FlaskClient:
    """A browser signed in to the HTML pages as ada."""
    browser = app.test_client()
    assert login(browser).status_code == 302
    assert signed_in(browser)
    return browser


@pytest.fixture
def grace(app: Flask) -> int:
    return make_user(app, "grace", "grace@example.com")


def events(app: Flask, user_id: int) -> list[str]:
    with app.app_context():
        return [row.event for row in get_state(app).audit.recent(user_id)]


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
    assert "account-created" in events(app, user["id"])
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


# -- login -------------------------------------------------------------------------------------


def test_login_returns_a_token_pair(app: Flask, api: FlaskClient, user: int) -> None:
    response = post(api, "/login", {"identity": "ada", "password": PASSWORD})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"  # tokens are never cached
    pair = body_of(response)
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    assert pair["access_token"].count(".") == 2
    # 256 random bits, URL-safe, and not kept in the database as such.
    assert len(unb64url(pair["refresh_token"])) >= 32
    with app.app_context():
        state = get_state(app)
        stored = state.db.session.scalars(select(state.models.RefreshToken.id)).all()
    assert stored
    assert pair["refresh_token"] not in stored
    assert body_of(get(api, "/me", token=pair["access_token"]))["id"] == user


@pytest.mark.parametrize("identity", ["ada@example.com", "ADA", "Ada@Example.COM"])
def test_login_by_username_or_email_ignores_case(
    api: FlaskClient, user: int, identity: str
) -> None:
    sign_in(api, identity)


def test_login_failures_are_generic_and_identical(api: FlaskClient, user: int) -> None:
    unknown = post(api, "/login", {"identity": "nobody", "password": PASSWORD})
    wrong = post(api, "/login", {"identity": "ada", "password": "not the password"})
    assert_problem(unknown, 401, "invalid_credentials")
    assert_problem(wrong, 401, "invalid_credentials")
    assert unknown.get_data() == wrong.get_data()
    assert sorted(unknown.headers.keys()) == sorted(wrong.headers.keys())


def test_login_to_a_deactivated_account_is_403_after_the_right_password(
    app: Flask, api: FlaskClient, user: int
) -> None:
    with app.app_context():
        state = get_state(app)
        account = state.accounts.get(user)
        assert account is not None
        state.accounts.set_active(account, False)
    right = post(api, "/login", {"identity": "ada", "password": PASSWORD})
    assert_problem(right, 403, "account_inactive")
    # The wrong password says nothing about the account's state.
    assert_problem(post(api, "/login", {"identity": "ada", "password": "nope"}), 401)


def test_login_waits_for_verification_when_it_is_required(make_demo_app: AppFactory) -> None:
    app = make_demo_app(PORTCULLIS_EMAIL_VERIFICATION="required")
    make_user(app)
    response = post(app.test_client(), "/login", {"identity": "ada", "password": PASSWORD})
    assert_problem(response, 403, "email_not_verified")


def test_login_is_limited_per_account_with_retry_after(make_demo_app: AppFactory) -> None:
    app = make_demo_app(**REAL_LIMITS)
    make_user(app)
    api = app.test_client()
    for _ in range(10):  # "10 per 15 minutes" per account and client
        sign_in(api)
    response = post(api, "/login", {"identity": "ada", "password": PASSWORD})
    assert_problem(response, 429, "throttled")
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60


def test_login_lockout_looks_the_same_for_unknown_and_known_accounts(
    make_demo_app: AppFactory,
) -> None:
    app = make_demo_app(**REAL_LIMITS)
    make_user(app)
    api = app.test_client()

    def attempts(identity: str) -> list[int]:
        return [sign_in_status(api, identity, "not the password") for _ in range(8)]

    known, unknown = attempts("ada"), attempts("nobody")
    assert known == unknown
    assert known[:5] == [401] * 5
    assert 429 in known


# -- refresh -----------------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(api: FlaskClient, user: int) -> None:
    first = sign_in(api)
    response = refresh(api, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    second = body_of(response)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert get(api, "/me", token=second["access_token"]).status_code == 200
    third = body_of(refresh(api, second["refresh_token"]))
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    # Each refresh token works once.
    assert_problem(refresh(api, second["refresh_token"]), 400, "token_invalid")


def test_reusing_a_used_refresh_token_ends_the_whole_family(
    app: Flask, api: FlaskClient, user: int
) -> None:
    first = sign_in(api)
    other_device = sign_in(api)
    second = body_of(refresh(api, first["refresh_token"]))
    newest = body_of(refresh(api, second["refresh_token"]))
    # Someone replays the first token: refused, and the session it belonged to ends.
    assert_problem(refresh(api, first["refresh_token"]), 400, "token_invalid")
    assert_problem(refresh(api, newest["refresh_token"]), 400, "token_invalid")
    sessions = body_of(get(api, "/sessions", token=other_device["access_token"]))["sessions"]
    assert len(sessions) == 1
    # Another sign-in of the same account is a different family and lives on.
    assert refresh(api, other_device["refresh_token"]).status_code == 200
    assert "session-revoked" in events(app, user)


@pytest.mark.parametrize("token", ["not-a-token", "x" * 43, "é"])
def test_refresh_refuses_unknown_tokens(api: FlaskClient, user: int, token: str) -> None:
    assert_problem(refresh(api, token), 400, "token_invalid")


def test_refresh_tokens_die_with_the_session_lifetime(
    api: FlaskClient, user: int, clock: FakeClock
) -> None:
    pair = sign_in(api)
    clock.advance(days=29)
    pair = body_of(refresh(api, pair["refresh_token"]))
    clock.advance(days=2)  # 31 days after sign-in: past the 30-day remember lifetime
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")


# -- logout / logout-everywhere ----------------------------------------------------------------


def test_logout_ends_the_refresh_token_family(app: Flask, api: FlaskClient, user: int) -> None:
    pair = sign_in(api)
    other = sign_in(api)
    response = post(api, "/logout", {"refresh_token": pair["refresh_token"]})
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert refresh(api, other["refresh_token"]).status_code == 200
    assert "sign-out" in events(app, user)
    # Unknown or already ended: still 204, nothing to tell.
    assert post(api, "/logout", {"refresh_token": pair["refresh_token"]}).status_code == 204


def test_access_tokens_outlive_logout_until_they_expire(
    api: FlaskClient, user: int, clock: FakeClock
) -> None:
    """The documented window: access tokens are checked by signature, not the database."""
    pair = sign_in(api)
    assert post(api, "/logout", {"refresh_token": pair["refresh_token"]}).status_code == 204
    assert get(api, "/me", token=pair["access_token"]).status_code == 200
    clock.advance(minutes=15)
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))


def test_logout_everywhere_ends_api_and_browser_sessions(
    app: Flask, api: FlaskClient, web: FlaskClient, user: int
) -> None:
    pair = sign_in(api)
    other = sign_in(api)
    response = post(api, "/logout-everywhere", token=pair["access_token"])
    assert response.status_code == 204
    assert not signed_in(web)
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_problem(refresh(api, other["refresh_token"]), 400, "token_invalid")
    assert "session-revoked" in events(app, user)


def test_logout_everywhere_needs_a_token(api: FlaskClient, web: FlaskClient) -> None:
    assert_problem(post(api, "/logout-everywhere"), 401, "unauthorized")
    assert signed_in(web)


# -- /me ---------------------------------------------------------------------------------------


def test_me_returns_the_account(api: FlaskClient, user: int) -> None:
    response = get(api, "/me", token=sign_in(api)["access_token"])
    assert response.status_code == 200
    me = body_of(response)
    assert me == {
        "id": user,
        "username": "ada",
        "email": "ada@example.com",
        "email_verified": False,
        "created_at": me["created_at"],
        "roles": [],
    }
    assert datetime.fromisoformat(me["created_at"]).tzinfo is not None


def test_me_without_a_token_asks_for_one(api: FlaskClient, user: int) -> None:
    response = get(api, "/me")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic YWRhOnB3",
        "Token abc",
        "Bearer not.a.jwt",
        "Bearer abc",
        # A header segment of nested JSON arrays: deep enough to exhaust a recursive parser.
        "Bearer " + base64.urlsafe_b64encode(b"[" * 1200).decode().rstrip("=") + ".e30.sig",
        "Bearer " + "e" * 2000 + ".e30.sig",
    ],
)
def test_me_with_a_bad_authorization_header_is_401(
    api: FlaskClient, user: int, header: str
) -> None:
    response = api.get(API + "/me", headers={"Authorization": header})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_the_bearer_scheme_is_case_insensitive(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    response = api.get(API + "/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


# -- password change ---------------------------------------------------------------------------


def test_password_change_ends_every_session_and_refresh_token(
    app: Flask, api: FlaskClient, web: FlaskClient, user: int, outbox: Outbox
) -> None:
    pair = sign_in(api)
    other = sign_in(api)
    response = post(
        api,
        "/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        token=pair["access_token"],
    )
    assert response.status_code == 204
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_problem(refresh(api, other["refresh_token"]), 400, "token_invalid")
    assert not signed_in(web)
    assert sign_in_status(api, "ada", PASSWORD) == 401
    sign_in(api, "ada", NEW_PASSWORD)
    assert "password-changed" in events(app, user)
    wait_for_mail(outbox, "ada@example.com", lambda mail: "password was changed" in mail.subject)


def test_password_change_needs_the_current_password(api: FlaskClient, user: int) -> None:
    pair = sign_in(api)
    body = {"current_password": "not the password", "new_password": NEW_PASSWORD}
    response = post(api, "/password", body, token=pair["access_token"])
    # A field error, not a 401: the token is fine, and a client must not drop it.
    problem = assert_problem(response, 422)
    assert error_fields(problem) == {"current_password"}
    assert "WWW-Authenticate" not in response.headers
    assert refresh(api, pair["refresh_token"]).status_code == 200  # nothing ended
    sign_in(api)


def test_password_change_applies_the_policy(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    body = {"current_password": PASSWORD, "new_password": "short"}
    problem = assert_problem(post(api, "/password", body, token=token), 422)
    assert error_fields(problem) == {"new_password"}
    assert all(error["message"] for error in problem["errors"])
    sign_in(api)


def test_password_change_needs_a_token(api: FlaskClient, user: int) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_problem(post(api, "/password", body), 401, "unauthorized")
    sign_in(api)


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
    assert "email-verified" in events(app, user)
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
    assert "password-reset" in events(app, user)
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


# -- sessions ----------------------------------------------------------------------------------


def test_sessions_lists_browsers_and_api_clients_with_the_current_one(
    api: FlaskClient, web: FlaskClient, user: int
) -> None:
    phone = sign_in(api, **{"User-Agent": "PhoneApp/1.0"})
    sign_in(api, **{"User-Agent": "Laptop/2.0"})
    response = get(api, "/sessions", token=phone["access_token"])
    assert response.status_code == 200
    sessions = body_of(response)["sessions"]
    assert len(sessions) == 3  # the browser and two API clients
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "PhoneApp/1.0"
    assert {s["user_agent"] for s in sessions} >= {"PhoneApp/1.0", "Laptop/2.0"}
    for session in sessions:
        assert session["ip"] == "127.0.0.1"
        assert datetime.fromisoformat(session["created_at"]).tzinfo is not None


def test_ending_one_session(api: FlaskClient, web: FlaskClient, user: int) -> None:
    phone = sign_in(api, **{"User-Agent": "PhoneApp/1.0"})
    laptop = sign_in(api, **{"User-Agent": "Laptop/2.0"})
    sessions = body_of(get(api, "/sessions", token=phone["access_token"]))["sessions"]
    laptop_id = next(s["id"] for s in sessions if s["user_agent"] == "Laptop/2.0")
    response = api.delete(f"{API}/sessions/{laptop_id}", headers=auth(phone["access_token"]))
    assert response.status_code == 204
    assert_problem(refresh(api, laptop["refresh_token"]), 400, "token_invalid")
    assert refresh(api, phone["refresh_token"]).status_code == 200
    assert signed_in(web)
    # Gone now: 404, like an id that never existed.
    again = api.delete(f"{API}/sessions/{laptop_id}", headers=auth(phone["access_token"]))
    assert_problem(again, 404, "not_found")
    assert_problem(
        api.delete(f"{API}/sessions/{'0' * 64}", headers=auth(phone["access_token"])), 404
    )


def test_ending_the_browser_session_from_the_api(
    api: FlaskClient, web: FlaskClient, user: int
) -> None:
    token = sign_in(api, **{"User-Agent": "PhoneApp/1.0"})["access_token"]
    sessions = body_of(get(api, "/sessions", token=token))["sessions"]
    browser = next(s["id"] for s in sessions if s["user_agent"] != "PhoneApp/1.0")
    assert api.delete(f"{API}/sessions/{browser}", headers=auth(token)).status_code == 204
    assert not signed_in(web)


def test_another_users_session_cannot_be_ended(api: FlaskClient, user: int, grace: int) -> None:
    ada = sign_in(api, "ada")
    theirs = sign_in(api, "grace")
    grace_session = body_of(get(api, "/sessions", token=theirs["access_token"]))["sessions"][0]
    response = api.delete(
        f"{API}/sessions/{grace_session['id']}", headers=auth(ada["access_token"])
    )
    assert_problem(response, 404, "not_found")
    assert refresh(api, theirs["refresh_token"]).status_code == 200


def test_sessions_need_a_token(api: FlaskClient, user: int) -> None:
    assert_problem(get(api, "/sessions"), 401, "unauthorized")
    assert_problem(api.delete(f"{API}/sessions/{'0' * 64}"), 401, "unauthorized")


# -- JWKS, OpenAPI, docs, unknown paths --------------------------------------------------------


def test_jwks_publishes_only_the_public_key(api: FlaskClient, user: int) -> None:
    response = get(api, "/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "max-age" in response.headers["Cache-Control"]
    keys = body_of(response)["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA"
    assert key["use"] == "sig"
    assert "d" not in key  # no private part
    assert len(unb64url(key["x"])) == 32
    header, _, _ = split(sign_in(api)["access_token"])
    assert header["kid"] == key["kid"]


def api_routes(app: Flask) -> set[tuple[str, str]]:
    """Every (method, path) the API blueprint routes, but the document, docs and catch-all."""
    routes: set[tuple[str, str]] = set()
    skip = {"portcullis_api.unknown", "portcullis_api.openapi_json", "portcullis_api.docs"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("portcullis_api.") or rule.endpoint in skip:
            continue
        path = rule.rule.removeprefix(API).replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    return routes


def test_openapi_document_describes_every_operation(app: Flask, api: FlaskClient) -> None:
    response = get(api, "/openapi.json")
    assert response.status_code == 200
    doc = body_of(response)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"][0]["url"].endswith("/api/v1")
    operations = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert operations >= OPERATIONS
    assert operations == api_routes(app)  # nothing routed that is not documented, and back
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path in operations:
        operation = doc["paths"][path][method]
        assert operation["operationId"]
        if (method, path) in OPERATIONS:
            assert (operation.get("security") == [{"bearer": []}]) == (
                (method, path) in BEARER_OPERATIONS
            ), path
        if "security" in operation:
            assert "401" in operation["responses"], path
        assert "503" in operation["responses"], path
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert answer["content"] == {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
    schemas = doc["components"]["schemas"]
    # The request schemas are the validating models: strict, no extra fields.
    for name in ("Register", "Login", "RefreshTokenBody", "ChangePassword", "ResetPassword"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["Register"]["properties"]["username"]["examples"] == ["ada"]
    assert set(schemas["Problem"]["required"]) >= {"title", "status", "code"}


def test_docs_page_renders_from_local_assets_and_links_the_document(api: FlaskClient) -> None:
    response = api.get(API + "/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert f'href="{API}/openapi.json"' in page
    for _, path in OPERATIONS:
        assert f"{API}{path}" in page, path
    assert 'src="http' not in page  # nothing from a CDN
    assert 'href="http' not in page


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/nope/deeper/still")])
def test_unknown_api_paths_are_problem_json_404(api: FlaskClient, method: str, path: str) -> None:
    assert_problem(api.open(API + path, method=method), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("DELETE", "/me", "GET"), ("GET", "/login", "POST"), ("PUT", "/sessions", "GET")],
)
def test_a_wrong_method_on_an_api_path_is_problem_json_405(
    api: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = api.open(API + path, method=method)
    assert_problem(response, 405)
    assert allowed in response.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("TRACE", "/me"), ("PROPFIND", "/me"), ("QUERY", "/nope"), ("GET", ""), ("POST", "/")],
)
def test_every_answer_under_the_api_prefix_is_problem_json(
    api: FlaskClient, method: str, path: str
) -> None:
    """Found by this suite: unusual methods and the bare prefix got the site's HTML pages."""
    response = api.open(API + path, method=method, follow_redirects=True)
    assert response.status_code in (404, 405)
    assert_problem(response, response.status_code)


# -- tokens, verified by an independent library ------------------------------------------------


def test_access_token_verifies_with_joserfc_through_the_jwks(
    api: FlaskClient, user: int, clock: FakeClock
) -> None:
    token = sign_in(api)["access_token"]
    jwks = body_of(get(api, "/jwks.json"))
    verified = verify_with_joserfc(token, jwks, "EdDSA", now=clock.now, sub=user)
    assert verified.header["alg"] == "EdDSA"
    assert verified.header["kid"] == jwks["keys"][0]["kid"]
    claims = verified.claims
    assert claims["iat"] == int(clock.now.timestamp())
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] <= claims["iat"]
    assert claims["sid"]
    assert claims["jti"] != split(sign_in(api)["access_token"])[1]["jti"]  # unique per token
    # joserfc agrees when it has expired.
    clock.advance(minutes=16)
    with pytest.raises(ExpiredTokenError):
        verify_with_joserfc(token, jwks, "EdDSA", now=clock.now, sub=user)


def test_another_apps_keys_do_not_verify_the_token(
    app: Flask, api: FlaskClient, user: int, make_demo_app: AppFactory, clock: FakeClock
) -> None:
    token = sign_in(api)["access_token"]
    other = make_demo_app(SECRET_KEY=OTHER_SECRET)
    other_jwks = body_of(get(other.test_client(), "/jwks.json"))
    own_kid = split(token)[0]["kid"]
    other_key = other_jwks["keys"][0]
    other_jwks = {"keys": [{**other_key, "kid": own_kid}]}  # even under the right kid
    with pytest.raises(BadSignatureError):
        verify_with_joserfc(token, other_jwks, "EdDSA", now=clock.now, sub=user)


def test_es256_tokens_verify_with_joserfc(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_JWT_ALGORITHM="ES256")
    user = make_user(app)
    api = app.test_client()
    token = sign_in(api)["access_token"]
    jwks = body_of(get(api, "/jwks.json"))
    (key,) = jwks["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in key
    verified = verify_with_joserfc(token, jwks, "ES256", now=clock.now, sub=user)
    assert verified.header["alg"] == "ES256"
    assert get(api, "/me", token=token).status_code == 200
    # Algorithm confusion with the EC public key is refused too.
    pem = hs_key_candidates(jwks)[0]
    _, claims, _ = split(token)
    forged = hs256({"alg": "HS256", "typ": "JWT", "kid": key["kid"]}, claims, pem)
    assert_invalid_token(get(api, "/me", token=forged))


def test_hs256_publishes_no_keys(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_JWT_ALGORITHM="HS256")
    make_user(app)
    api = app.test_client()
    token = sign_in(api)["access_token"]
    assert body_of(get(api, "/jwks.json")) == {"keys": []}
    header, claims, _ = split(token)
    assert header["alg"] == "HS256"
    assert get(api, "/me", token=token).status_code == 200
    # An EdDSA token signed with the right secret's EdDSA key is still the wrong algorithm.
    eddsa = make_key(app.config["SECRET_KEY"], "EdDSA")
    wrong_alg = jwt.encode(claims, eddsa.private, algorithm="EdDSA", headers={"kid": header["kid"]})
    assert_invalid_token(get(api, "/me", token=wrong_alg))
    unsigned = assemble({"alg": "none", "typ": "JWT", "kid": header["kid"]}, claims, "")
    assert_invalid_token(get(api, "/me", token=unsigned))


def test_the_access_token_lifetime_is_configurable(
    make_demo_app: AppFactory, clock: FakeClock
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_ACCESS_TOKEN_LIFETIME=60)
    make_user(app)
    api = app.test_client()
    pair = sign_in(api)
    assert pair["expires_in"] == 60
    clock.advance(seconds=59)
    assert get(api, "/me", token=pair["access_token"]).status_code == 200
    clock.advance(seconds=1)
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))


def test_an_expired_token_is_refused_and_refresh_gives_a_working_one(
    api: FlaskClient, user: int, clock: FakeClock
) -> None:
    pair = sign_in(api)
    clock.advance(minutes=16)
    response = get(api, "/me", token=pair["access_token"])
    assert_invalid_token(response)
    assert "expired" in body_of(response)["detail"]
    fresh = body_of(refresh(api, pair["refresh_token"]))
    assert get(api, "/me", token=fresh["access_token"]).status_code == 200


# -- forged tokens -----------------------------------------------------------------------------


def hs_key_candidates(jwks: dict[str, Any]) -> list[bytes]:
    """What an attacker would try as the HMAC secret: the public key in every usual form."""
    (key,) = jwks["keys"]
    if key["kty"] == "OKP":
        raw = unb64url(key["x"])
        public: Any = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    else:
        raw = b"\x04" + unb64url(key["x"]) + unb64url(key["y"])
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [pem, der, raw, json.dumps(key).encode(), key["x"].encode()]


@dataclass
class Forger:
    """Makes tokens from a genuine one, with or without the app's own signing key."""

    token: str
    jwks: dict[str, Any]
    other_user: int
    secret: str  # the app's SECRET_KEY

    @property
    def kid(self) -> str:
        return str(split(self.token)[0]["kid"])

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims = {**split(self.token)[1], **changes}
        return {name: value for name, value in claims.items() if value is not None}

    def signed(
        self,
        claims: dict[str, Any] | None = None,
        *,
        secret: str | None = None,
        kid: str | None = "",
    ) -> str:
        """Sign with the EdDSA key ``secret`` derives (default: the app's), built as the app
        builds it; ``kid`` "" is that key's own, None leaves it out."""
        key = make_key(secret or self.secret, "EdDSA")
        headers = {} if kid is None else {"kid": kid or key.kid}
        return jwt.encode(
            claims if claims is not None else self.claims(),
            key.private,
            algorithm="EdDSA",
            headers=headers,
        )

    def with_payload(self, claims: dict[str, Any]) -> str:
        """The genuine header and signature over a different payload."""
        header, _, signature = self.token.split(".")
        return f"{header}.{b64url(compact(claims))}.{signature}"


def _confusion(forger: Forger, index: int) -> str:
    key = hs_key_candidates(forger.jwks)[index]
    return hs256({"alg": "HS256", "typ": "JWT", "kid": forger.kid}, forger.claims(), key)


def _none(alg: str) -> Callable[[Forger], str]:
    def make(forger: Forger) -> str:
        return assemble({"alg": alg, "typ": "JWT", "kid": forger.kid}, forger.claims(), "")

    return make


def _flip_signature(forger: Forger) -> str:
    head, payload, signature = forger.token.split(".")
    raw = bytearray(unb64url(signature))
    raw[0] ^= 1
    return f"{head}.{payload}.{b64url(bytes(raw))}"


FORGERIES: dict[str, Callable[[Forger], str]] = {
    "alg none": _none("none"),
    "alg None": _none("None"),
    "alg NONE": _none("NONE"),
    "HS256 keyed with the public key (PEM)": lambda f: _confusion(f, 0),
    "HS256 keyed with the public key (DER)": lambda f: _confusion(f, 1),
    "HS256 keyed with the public key (raw)": lambda f: _confusion(f, 2),
    "HS256 keyed with the JWK": lambda f: _confusion(f, 3),
    "HS256 keyed with the JWK's x": lambda f: _confusion(f, 4),
    "tampered sub": lambda f: f.with_payload(f.claims(sub=str(f.other_user))),
    "tampered exp": lambda f: f.with_payload(f.claims(exp=f.claims()["exp"] + 3600)),
    "flipped signature bit": _flip_signature,
    "no signature": lambda f: f.token.rsplit(".", 1)[0] + ".",
    "wrong audience": lambda f: f.signed(f.claims(aud="another-api")),
    "audience list without ours": lambda f: f.signed(f.claims(aud=["another-api"])),
    "no audience": lambda f: f.signed(f.claims(aud=None)),
    "wrong issuer": lambda f: f.signed(f.claims(iss="https://evil.example")),
    "unknown kid": lambda f: f.signed(kid="not-a-key-we-know"),
    "no kid": lambda f: f.signed(kid=None),
    "signed by another secret": lambda f: f.signed(secret=OTHER_SECRET),
    "another secret under our kid": lambda f: f.signed(secret=OTHER_SECRET, kid=f.kid),
    "not yet valid": lambda f: f.signed(f.claims(nbf=f.claims()["iat"] + 600)),
    "exp as a string": lambda f: f.signed(f.claims(exp=str(f.claims()["exp"]))),
    "no exp": lambda f: f.signed(f.claims(exp=None)),
    "no sid": lambda f: f.signed(f.claims(sid=None)),
    "no jti": lambda f: f.signed(f.claims(jti=None)),
    "unknown user": lambda f: f.signed(f.claims(sub="999999")),
    "non-numeric sub": lambda f: f.signed(f.claims(sub="ada")),
    "garbage": lambda f: "not-a-jwt",
    "two parts": lambda f: ".".join(f.token.split(".")[:2]),
}


@pytest.fixture
def forger(app: Flask, api: FlaskClient, user: int, grace: int) -> Forger:
    token = sign_in(api)["access_token"]
    return Forger(token, body_of(get(api, "/jwks.json")), grace, app.config["SECRET_KEY"])


def test_the_forger_can_make_an_accepted_token(api: FlaskClient, forger: Forger) -> None:
    """The control: with every claim right, a token the test signs is accepted, so each
    refusal below is for the one thing that was changed."""
    assert get(api, "/me", token=forger.signed()).status_code == 200
    # Re-encoding the genuine claims gives the genuine token back: only the change differs.
    assert forger.with_payload(forger.claims()) == forger.token


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_forged_tokens_are_refused(api: FlaskClient, forger: Forger, kind: str) -> None:
    token = FORGERIES[kind](forger)
    response = get(api, "/me", token=token)
    assert_invalid_token(response)
    # A forged token opens nothing else either.
    assert post(api, "/logout-everywhere", token=token).status_code == 401
    assert get(api, "/me", token=forger.token).status_code == 200  # the genuine one lives


@pytest.mark.parametrize("sub", ["²", "٣", "1" * 40, "-1", " 1", "1.0"])
def test_a_validly_signed_token_with_an_odd_sub_is_401(
    api: FlaskClient, forger: Forger, sub: str
) -> None:
    """Found by this suite: sub was tested with str.isdigit(), which accepts digits int()
    refuses ('²'): a ValueError, so a 500, instead of 401."""
    assert_invalid_token(get(api, "/me", token=forger.signed(forger.claims(sub=sub))))


# -- key rotation ------------------------------------------------------------------------------


def test_keys_rotate_through_secret_key_fallbacks(
    make_demo_app: AppFactory, clock: FakeClock
) -> None:
    old_app = make_demo_app(clock=clock, SECRET_KEY=SECRET)
    user = make_user(old_app)
    token = sign_in(old_app.test_client())["access_token"]
    old_kid = split(token)[0]["kid"]

    rotated = make_demo_app(clock=clock, SECRET_KEY=OTHER_SECRET, SECRET_KEY_FALLBACKS=[SECRET])
    api = rotated.test_client()
    assert get(api, "/me", token=token).status_code == 200
    jwks = body_of(get(api, "/jwks.json"))
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) == 2
    assert old_kid in kids
    verify_with_joserfc(token, jwks, "EdDSA", now=clock.now, sub=user)
    # New tokens are signed with the new key.
    new_token = sign_in(api)["access_token"]
    new_kid = split(new_token)[0]["kid"]
    assert new_kid != old_kid
    assert new_kid in kids
    verify_with_joserfc(new_token, jwks, "EdDSA", now=clock.now, sub=user)

    retired = make_demo_app(clock=clock, SECRET_KEY=OTHER_SECRET).test_client()
    assert_invalid_token(get(retired, "/me", token=token))
    assert get(retired, "/me", token=new_token).status_code == 200
    assert [key["kid"] for key in body_of(get(retired, "/jwks.json"))["keys"]] == [new_kid]


# -- revocation --------------------------------------------------------------------------------


def test_deactivation_revokes_at_once(app: Flask, api: FlaskClient, user: int) -> None:
    pair = sign_in(api)
    result = app.test_cli_runner().invoke(args=["users", "deactivate", "ada"])
    assert result.exit_code == 0, result.output
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))
    assert_invalid_token(get(api, "/sessions", token=pair["access_token"]))
    # Reactivated: the old tokens stay dead; a new sign-in works.
    assert app.test_cli_runner().invoke(args=["users", "activate", "ada"]).exit_code == 0
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert get(api, "/me", token=sign_in(api)["access_token"]).status_code == 200


def test_deletion_revokes_at_once(app: Flask, api: FlaskClient, user: int) -> None:
    pair = sign_in(api)
    result = app.test_cli_runner().invoke(args=["users", "delete", "ada", "--yes"])
    assert result.exit_code == 0, result.output
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"identity": "ada", ', "application/json"),
        (b"not json at all", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[]", "application/json"),
        (b'["ada", "pw"]', "application/json"),
        (b'"ada"', "application/json"),
        (b"42", "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
        (b"[" * 60_000, "application/json"),  # deeper than the parser's recursion limit
        (b'{"identity": "ada", "password": "x"}', "text/plain"),
        (b"identity=ada&password=x", "application/x-www-form-urlencoded"),
        (b'{"identity": "ada", "password": "x"}', None),
    ],
)
@pytest.mark.parametrize("path", ["/login", "/register", "/refresh", "/forgot-password"])
def test_a_body_that_is_not_a_json_object_is_400(
    api: FlaskClient, path: str, data: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post(API + path, data=data, headers=headers)
    assert_problem(response, 400, "invalid_field")


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/login", {}, {"identity", "password"}),
        ("/login", {"identity": "ada"}, {"password"}),
        ("/login", {"identity": 1, "password": PASSWORD}, {"identity"}),
        ("/login", {"identity": "ada", "password": None}, {"password"}),
        ("/login", {"identity": ["ada"], "password": {"p": 1}}, {"identity", "password"}),
        ("/login", {"identity": "ada", "password": True}, {"password"}),
        ("/login", {"identity": "ada", "password": PASSWORD, "remember": True}, {"remember"}),
        ("/login", {"identity": "ada", "password": "x" * 5000}, {"password"}),
        ("/register", {"username": "grace", "email": "g@example.com"}, {"password"}),
        (
            "/register",
            {"username": "grace", "email": "g@example.com", "password": 12345678},
            {"password"},
        ),
        (
            "/register",
            {"username": "g", "email": "g@example.com", "password": PASSWORD, "admin": True},
            {"admin"},
        ),
        ("/refresh", {"refresh_token": ""}, {"refresh_token"}),
        ("/refresh", {"refresh_token": 7}, {"refresh_token"}),
        ("/logout", {}, {"refresh_token"}),
        ("/verify-email", {"token": None}, {"token"}),
        ("/forgot-password", {"email": ["a@example.com"]}, {"email"}),
        ("/reset-password", {"token": "t"}, {"password"}),
    ],
)
def test_wrong_missing_or_extra_fields_are_422_per_field(
    api: FlaskClient, user: int, path: str, body: dict[str, Any], fields: set[str]
) -> None:
    problem = assert_problem(post(api, path, body), 422, "invalid_field")
    assert error_fields(problem) == fields
    assert all(error["message"] for error in problem["errors"])
    assert all(set(error) == {"field", "message"} for error in problem["errors"])  # no echo


def test_an_oversized_body_is_413_problem_json(api: FlaskClient, user: int) -> None:
    body = {"identity": "ada", "password": "x" * 2_000_000}
    response = post(api, "/login", body)
    assert_problem(response, 413)
    documented = body_of(get(api, "/openapi.json"))["paths"]["/login"]["post"]["responses"]
    assert "413" in documented


def test_a_schema_valid_body_is_not_refused_with_an_undocumented_status(
    api: FlaskClient, user: int
) -> None:
    """Found by schemathesis: a 64 KiB cap refused two 4096-character passwords of astral
    characters, \\u-escaped as Python's json.dumps writes them (~98 KiB), with a 413 the
    document did not list."""
    token = sign_in(api)["access_token"]
    password = "\N{GRINNING FACE}" * 4096  # the schema's maxLength, in characters
    body = json.dumps({"current_password": password, "new_password": password})
    response = api.post(
        API + "/password", data=body, content_type="application/json", headers=auth(token)
    )
    documented = body_of(get(api, "/openapi.json"))["paths"]["/password"]["post"]["responses"]
    assert str(response.status_code) in documented, response.status_code


def test_bad_bodies_on_bearer_operations(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    malformed = api.post(
        API + "/password", data=b"{", content_type="application/json", headers=auth(token)
    )
    assert_problem(malformed, 400, "invalid_field")
    missing = post(api, "/password", {"new_password": NEW_PASSWORD}, token=token)
    assert error_fields(assert_problem(missing, 422)) == {"current_password"}


def test_an_unexpected_error_is_a_problem_without_a_stack_trace(
    make_demo_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_demo_app(TESTING=False)
    make_user(app)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals /srv/app.py line 42")

    monkeypatch.setattr(get_state(app).accounts, "authenticate", broken)
    with pytest.MonkeyPatch.context() as quiet:
        quiet.setattr(app.logger, "disabled", True)  # Flask logs the exception; expected
        response = post(app.test_client(), "/login", {"identity": "ada", "password": PASSWORD})
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert "RuntimeError" not in json.dumps(body)


def test_a_database_outage_is_503_with_retry_after(
    app: Flask, api: FlaskClient, user: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionError("database is down"))

    monkeypatch.setattr(get_state(app).accounts, "authenticate", down)
    response = post(api, "/login", {"identity": "ada", "password": PASSWORD})
    assert_problem(response, 503, "unavailable")
    assert response.headers["Retry-After"] == "30"
    assert "database is down" not in response.get_data(as_text=True)


def test_api_sign_in_from_a_new_device_is_notified(
    api: FlaskClient, user: int, outbox: Outbox
) -> None:
    sign_in(api, **{"User-Agent": "PhoneApp/1.0"})  # the first sign-in: nothing to compare
    sign_in(api, **{"User-Agent": "PhoneApp/1.0"})
    assert subjects(outbox, "ada@example.com", "New sign-in") == []
    sign_in(api, **{"User-Agent": "StrangeDevice/9"})
    wait_for_mail(outbox, "ada@example.com", lambda mail: "New sign-in" in mail.subject)


def test_every_401_carries_www_authenticate(api: FlaskClient, user: int) -> None:
    """RFC 9110 15.5.2 (found by this suite: the sign-in 401 had none)."""
    response = post(api, "/login", {"identity": "ada", "password": "nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


# -- browsers and the API stay apart -----------------------------------------------------------


def test_api_responses_set_no_cookies(api: FlaskClient, user: int, outbox: Outbox) -> None:
    pair = sign_in(api)
    responses = [
        post(api, "/login", {"identity": "ada", "password": PASSWORD}),
        post(api, "/login", {"identity": "ada", "password": "wrong"}),
        refresh(api, pair["refresh_token"]),
        get(api, "/me", token=pair["access_token"]),
        get(api, "/me"),
        get(api, "/sessions", token=pair["access_token"]),
        post(
            api, "/register", {"username": "eve", "email": "eve@example.com", "password": PASSWORD}
        ),
        post(api, "/forgot-password", {"email": "ada@example.com"}),
        get(api, "/jwks.json"),
        get(api, "/openapi.json"),
        post(api, "/logout", {"refresh_token": pair["refresh_token"]}),
    ]
    for response in responses:
        assert "Set-Cookie" not in response.headers, response.request.path
    assert api.get_cookie("session") is None


def test_a_browser_session_does_not_authorise_the_api(api: FlaskClient, web: FlaskClient) -> None:
    response = web.get(API + "/me")
    assert_problem(response, 401, "unauthorized")
    assert web.post(API + "/logout-everywhere").status_code == 401
    assert signed_in(web)


def test_a_bearer_token_does_not_sign_a_browser_in(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    response = api.get("/account", headers=auth(token))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_api_posts_need_no_csrf_token_but_cookie_posts_do(
    app: Flask, web: FlaskClient, user: int
) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True)
    assert "csrf" in app.extensions
    # The browser's own JSON POST to a cookie-authenticated page is refused without a token.
    cookie_json = web.post(
        "/account/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert cookie_json.status_code == 400
    assert web.post("/logout").status_code == 400
    assert signed_in(web)
    # The same browser calls the API with a bearer token and no CSRF token at all.
    pair = sign_in(web)
    response = post(
        web,
        "/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        token=pair["access_token"],
    )
    assert response.status_code == 204


def test_cors_is_off_by_default(api: FlaskClient, user: int) -> None:
    headers = {"Origin": ORIGIN}
    response = api.post(
        API + "/login", json={"identity": "ada", "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = api.options(
        API + "/login", headers={**headers, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_allows_only_listed_origins(make_demo_app: AppFactory) -> None:
    app = make_demo_app(PORTCULLIS_CORS_ORIGINS=[ORIGIN])
    make_user(app)
    api = app.test_client()
    preflight = api.options(
        API + "/me",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    response = api.post(
        API + "/login", json={"identity": "ada", "password": PASSWORD}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    token = body_of(response)["access_token"]
    me = api.get(API + "/me", headers={"Origin": ORIGIN, **auth(token)})
    assert me.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Errors carry it too, or the front-end could not read them.
    assert (
        api.get(API + "/me", headers={"Origin": ORIGIN}).headers["Access-Control-Allow-Origin"]
        == ORIGIN
    )

    for stranger in ("https://evil.example", "https://app.example.com.evil.example", "null"):
        refused = api.post(
            API + "/login",
            json={"identity": "ada", "password": PASSWORD},
            headers={"Origin": stranger},
        )
        assert "Access-Control-Allow-Origin" not in refused.headers, stranger
        assert (
            "Access-Control-Allow-Origin"
            not in api.options(
                API + "/me", headers={"Origin": stranger, "Access-Control-Request-Method": "GET"}
            ).headers
        )
    # The HTML pages are not opened to the listed origin.
    assert (
        "Access-Control-Allow-Origin" not in api.get("/login", headers={"Origin": ORIGIN}).headers
    )


# -- audit -------------------------------------------------------------------------------------


def test_api_sign_in_is_audited(app: Flask, api: FlaskClient, user: int) -> None:
    api.post(
        API + "/login",
        json={"identity": "ada", "password": PASSWORD},
        headers={"User-Agent": "PhoneApp/1.0"},
    )
    with app.app_context():
        rows = get_state(app).audit.recent(user)
        sign_ins = [row for row in rows if row.event == "sign-in"]
        assert len(sign_ins) == 1
        assert sign_ins[0].ip == "127.0.0.1"
        assert sign_ins[0].user_agent == "PhoneApp/1.0"
        assert "api" in sign_ins[0].detail


def test_failed_api_sign_in_is_audited(app: Flask, api: FlaskClient, user: int) -> None:
    assert_problem(post(api, "/login", {"identity": "ada", "password": "wrong"}), 401)
    assert "sign-in-failed" in events(app, user)


def test_throttled_api_sign_in_is_audited(make_demo_app: AppFactory) -> None:
    app = make_demo_app(**REAL_LIMITS)
    make_user(app)
    api = app.test_client()
    for _ in range(10):
        sign_in(api)
    assert_problem(post(api, "/login", {"identity": "ada", "password": PASSWORD}), 429)
    with app.app_context():
        assert get_state(app).audit.search(event="throttled")
