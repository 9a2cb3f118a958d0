"""Signed, purpose-bound, expiring, single-use links (verification, reset, email change).

Nothing is stored: a token carries the user id and a fingerprint of the
account state its purpose depends on, signed with the app's secret key
(itsdangerous, one salt per purpose). Once that state changes (the password,
the address, the last sign-in) the fingerprint no longer matches and the link
is dead, so a reset link works once and dies with any password change. This
is the design of django.contrib.auth's PasswordResetTokenGenerator.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from .clock import Clock
from .exceptions import TokenExpired, TokenInvalid
from .models import UserMixin


class Purpose(StrEnum):
    VERIFY_EMAIL = "verify-email"
    RESET_PASSWORD = "reset-password"
    CHANGE_EMAIL = "change-email"
    TWO_FACTOR = "two-factor"  # the API's challenge between password and second factor


def _state(purpose: Purpose, user: UserMixin) -> str:
    # What must stay the same for the link to remain valid.
    if purpose is Purpose.VERIFY_EMAIL:
        return f"{user.email_key}|{user.email_verified_at}"
    if purpose is Purpose.TWO_FACTOR:
        # Dies with a password change, and with the next password step.
        return f"{user.password_hash}|{user.last_login_at}|{user.active}"
    if purpose is Purpose.RESET_PASSWORD:
        # The address too: a link sent to a mailbox the user has since left must die.
        return f"{user.password_hash}|{user.last_login_at}|{user.email_key}"
    return f"{user.email_key}|{user.password_hash}"


def fingerprint(purpose: Purpose, user: UserMixin) -> str:
    """Digest of the state a link depends on (the hash is never put in a link as such)."""
    return hashlib.sha256(f"{purpose}|{user.id}|{_state(purpose, user)}".encode()).hexdigest()[:32]


class TokenService:
    """Make and check tokens. ``secret_keys`` lists the old keys first and the current key last."""

    def __init__(self, secret_keys: Sequence[str], clock: Clock) -> None:
        class ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock().timestamp())

        self._serializers: dict[Purpose, URLSafeTimedSerializer] = {
            purpose: URLSafeTimedSerializer(
                [str(key) for key in secret_keys], salt=f"portcullis.{purpose}", signer=ClockSigner
            )
            for purpose in Purpose
        }

    def make(self, purpose: Purpose, user: UserMixin, **extra: str) -> str:
        """Return a URL-safe token for ``purpose`` bound to ``user``'s current state."""
        payload = {"u": user.id, "f": fingerprint(purpose, user), **extra}
        return str(self._serializers[purpose].dumps(payload))

    def check(
        self,
        purpose: Purpose,
        token: str,
        max_age: int,
        load_user: Callable[[int], UserMixin | None],
    ) -> tuple[UserMixin, dict[str, Any]]:
        """Return the user and payload of a valid token, or raise TokenInvalid/TokenExpired."""
        serializer = self._serializers[purpose]
        try:
            payload = serializer.loads(token, max_age=max_age)
        except SignatureExpired as exc:
            raise TokenExpired("This link has expired.") from exc
        except BadSignature as exc:
            raise TokenInvalid("This link is not valid.") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
            raise TokenInvalid("This link is not valid.")
        user = load_user(payload["u"])
        if user is None or not hmac.compare_digest(
            str(payload.get("f", "")), fingerprint(purpose, user)
        ):
            raise TokenInvalid("This link has already been used or is no longer valid.")
        return user, payload
