"""Talking to the JSON API (``/api/v1``) through the test client, and reading what it
answers: requests, problem+json, mailed links, and JWTs taken apart, forged or checked with
joserfc against the published JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet, KeySetSerialization
from werkzeug.test import TestResponse

from .conftest import (
    LINK,
    PASSWORD,
    Mail,
    Outbox,
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
    ("delete", "/me"),
    ("post", "/email"),
    ("post", "/email/confirm"),
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
    ("delete", "/me"),
    ("post", "/email"),
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
