"""JWT access tokens for the JSON API (RFC 7519, RFC 8725 best practice).

Short-lived, signed, verified without the database. Keys are derived from
``SECRET_KEY`` (HKDF), so every worker and machine agrees without a key file,
and ``SECRET_KEY_FALLBACKS`` doubles as key rotation: old keys still verify
and stay published in the JWKS. Each key has a ``kid`` (its RFC 7638
thumbprint). The algorithm is fixed by configuration and nothing else: the
token's own ``alg`` header is never trusted (no ``none``, no confusion).

PyJWT does the signing and checking: small, maintained, and it refuses
tokens whose algorithm is not in the allow-list it is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .clock import Clock
from .exceptions import TokenExpired, TokenInvalid

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def _derive(secret: str, algorithm: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"portcullis.jwt", info=algorithm.encode()
    )
    return hkdf.derive(secret.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Any
    public: Any
    jwk: dict[str, str] | None  # None for HS256: a shared secret is never published


def make_key(secret: str, algorithm: str) -> SigningKey:
    """Derive the signing key for ``algorithm`` from one secret key."""
    seed = _derive(secret, algorithm)
    if algorithm == "HS256":
        return SigningKey(
            kid=_b64(hashlib.sha256(b"kid" + seed).digest())[:16],
            private=seed,
            public=seed,
            jwk=None,
        )
    if algorithm == "EdDSA":
        private: Any = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
        members = {k: jwk[k] for k in ("crv", "kty", "x")}
    else:
        scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
        private = ec.derive_private_key(scalar, ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
        members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    # RFC 7638: the thumbprint of the required members, sorted, without spaces.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    public_jwk = {**members, "kid": kid, "use": "sig", "alg": algorithm}
    return SigningKey(kid=kid, private=private, public=private.public_key(), jwk=public_jwk)


HEADER_MAX = 1024  # ours are ~100 characters; a longer one is not worth parsing


def _unverified_kid(token: str) -> str:
    """Read the ``kid`` that picks the key, before anything is verified.

    Only the header segment is decoded here, as PyJWT's ``decode`` parses and
    checks the whole token anyway (parsing it twice cost a sixth of a verify).
    """
    segment = token.partition(".")[0]
    if len(segment) > HEADER_MAX:
        raise TokenInvalid("The access token is malformed.")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:  # bad base64, UTF-8, JSON
        raise TokenInvalid("The access token is malformed.") from exc
    if not isinstance(header, dict):
        raise TokenInvalid("The access token is malformed.")
    return str(header.get("kid"))


CHECKED_TOKENS = 1024  # valid tokens whose signature a process remembers having checked


class AccessTokens:
    """Issue and verify access tokens; publish the public keys."""

    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        algorithm: str,
        issuer: str,
        audience: str,
        lifetime: int,
        clock: Clock,
    ) -> None:
        # secret_keys: oldest first, current last (Flask's order for fallbacks).
        self._keys = [make_key(secret, algorithm) for secret in reversed(secret_keys)]
        self._by_kid = {key.kid: key for key in self._keys}
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self._clock = clock
        # A client sends one token with every call until it expires: its signature is checked
        # once per process, its times on every call. Only valid tokens are kept.
        self._checked = lru_cache(maxsize=CHECKED_TOKENS)(self._check_signature)

    def issue(self, user_id: int, session: str) -> str:
        """Sign a token for ``user_id`` in API session ``session`` (a session record id)."""
        now = self._clock()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": session,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.lifetime)).timestamp()),
            "jti": secrets.token_urlsafe(16),
        }
        key = self._keys[0]
        return jwt.encode(claims, key.private, algorithm=self.algorithm, headers={"kid": key.kid})

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token, or raise TokenInvalid / TokenExpired."""
        claims = dict(self._checked(token))
        now = int(self._clock().timestamp())
        if claims["exp"] <= now:
            raise TokenExpired("The access token has expired.")
        if claims["nbf"] > now:
            raise TokenInvalid("The access token is not valid yet.")
        return claims

    def _check_signature(self, token: str) -> dict[str, Any]:
        """The claims of a token signed by one of our keys, for our audience, with every
        claim present; not its times (see verify)."""
        key = self._by_kid.get(_unverified_kid(token))
        if key is None:
            raise TokenInvalid("The access token was signed with an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public,
                algorithms=[self.algorithm],  # fixed here: the header cannot choose
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "iat", "nbf", "sub", "jti", "sid", "aud", "iss"],
                    # Times are checked below against the app's clock (tests move it).
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid("The access token is not valid.") from exc
        times = (claims["exp"], claims["nbf"], claims["iat"])
        if not all(isinstance(value, int) for value in times):
            raise TokenInvalid("The access token is not valid.")
        return claims

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JSON Web Key Set (empty for HS256)."""
        return {"keys": [key.jwk for key in self._keys if key.jwk is not None]}
