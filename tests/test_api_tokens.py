"""The JSON API's tokens: login, refresh, logout; access tokens checked with joserfc against
the published JWKS only (the package signs with PyJWT; PyJWT appears here only to *forge*
tokens, with keys built like the app's); key rotation and revocation. Time moves by the
app's FakeClock: tokens carry its ``iat``/``exp`` and are verified against it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from flask import Flask
from flask.testing import FlaskClient
from joserfc.errors import BadSignatureError, ExpiredTokenError
from sqlalchemy import select

from flask_portcullis import get_state
from flask_portcullis.access_tokens import make_key

from .api_client import (
    OTHER_SECRET,
    SECRET,
    assemble,
    assert_invalid_token,
    assert_problem,
    b64url,
    body_of,
    compact,
    get,
    hs256,
    post,
    refresh,
    sign_in,
    sign_in_status,
    split,
    unb64url,
    verify_with_joserfc,
)
from .conftest import (
    PASSWORD,
    REAL_LIMITS,
    AppFactory,
    FakeClock,
    deactivate,
    make_user,
    signed_in,
)
from .rows import recent_events

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
    deactivate(app, user)
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
    assert "session-revoked" in recent_events(app, user)


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
    assert "sign-out" in recent_events(app, user)
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
    assert "session-revoked" in recent_events(app, user)


def test_logout_everywhere_needs_a_token(api: FlaskClient, web: FlaskClient) -> None:
    assert_problem(post(api, "/logout-everywhere"), 401, "unauthorized")
    assert signed_in(web)


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
