"""Opaque, rotating refresh tokens with reuse detection, for the JSON API.

Each API sign-in opens a server-side session (the same records the browser
uses, so it shows on the devices page and ends with every "sign out
everywhere", password change, deactivation or deletion, whichever store holds
it: ending a session deletes its tokens too) and hands out one
refresh token: 256 random bits, stored only as a SHA-256 digest. A refresh
uses it up and returns the next one. Presenting a used token again means it
was copied: the whole family (the session and all its tokens) ends at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import update

from .clock import Clock
from .exceptions import RefreshTokenReused, TokenInvalid
from .models import DbSession, Models, UserMixin
from .sessions import SessionService, digest


@dataclass(frozen=True)
class Grant:
    """What a sign-in or refresh hands to the client (with a fresh access token)."""

    user: UserMixin
    session: str  # the session record id: goes into the access token as "sid"
    refresh_token: str


class RefreshTokens:
    def __init__(
        self, db: DbSession, models: Models, sessions: SessionService, clock: Clock
    ) -> None:
        self._db = db
        self._models = models
        self._sessions = sessions
        self._clock = clock

    def start(self, user: UserMixin, *, ip: str, user_agent: str) -> Grant:
        """Open an API session for ``user`` and return its first refresh token."""
        record_id = digest(self._sessions.start(user, remember=True, ip=ip, user_agent=user_agent))
        return Grant(user, record_id, self._issue(record_id))

    def rotate(self, token: str) -> Grant:
        """Use up ``token`` and return the next one; reuse ends the whole family."""
        row = self._db.get(self._models.RefreshToken, digest(token))
        if row is None:
            raise TokenInvalid("The refresh token is not valid.")
        if row.used_at is not None:
            raise RefreshTokenReused(self._end_family(row.session_id))
        session_id = row.session_id
        active = self._sessions.resolve_id(session_id)
        if active is None:
            raise TokenInvalid("The session of this refresh token has ended.")
        # Use it up atomically: of two requests racing with one token, one wins and the
        # other is reuse (OAuth 2.0 Security BCP 4.14.2).
        RefreshToken = self._models.RefreshToken
        claimed = self._db.execute(
            update(RefreshToken)
            .where(RefreshToken.id == digest(token), RefreshToken.used_at.is_(None))
            .values(used_at=self._clock())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise RefreshTokenReused(self._end_family(session_id))
        return Grant(active.user, session_id, self._issue(session_id))

    def revoke(self, token: str) -> int | None:
        """End the session ``token`` belongs to; return its user id (None if unknown)."""
        row = self._db.get(self._models.RefreshToken, digest(token))
        return None if row is None else self._end_family(row.session_id)

    def _issue(self, record_id: str) -> str:
        token = secrets.token_urlsafe(32)
        self._db.add(
            self._models.RefreshToken(
                id=digest(token), session_id=record_id, created_at=self._clock()
            )
        )
        self._db.commit()
        return token

    def _end_family(self, record_id: str) -> int | None:
        """End a session and so all its tokens; return its user's id (for the audit log)."""
        return self._sessions.end_id(record_id)
