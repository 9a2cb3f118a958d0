"""Server-side session records: every signed-in device is a row the server can end.

Two names, never mixed: the browser holds a random session *token* (256
bits) inside Flask's signed cookie; the database holds only its SHA-256
digest, the session's *id* (the row's key, what lists show and the API's
``/sessions/{session_id}`` names), so a leaked table cannot be replayed.
Every request resolves the token, so ending a row ends the session at once
(OWASP ASVS 3.3.1, 3.3.3).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, select, update

from .clock import Clock
from .identities import Identities
from .models import DbSession, Models, SessionMixin, SignedInUser, UserMixin
from .settings import Settings

# Write last-seen at most this often: one UPDATE a minute, not one per request.
TOUCH_INTERVAL = timedelta(seconds=60)
IP_MAX = 45  # an IPv6 address with an IPv4 tail
USER_AGENT_MAX = 512


def digest(token: str) -> str:
    """Return the stored form of a token: a session's id, a refresh token's row key."""
    return hashlib.sha256(token.encode()).hexdigest()


def printable(text: str) -> str:
    """Drop control and format characters (NUL, bidi overrides) from client-supplied text."""
    return "".join(ch for ch in text if ch.isprintable())


def stored_client(ip: str, user_agent: str) -> tuple[str, str]:
    """The IP and browser as sessions and audit events store them (and as the new-device
    check compares them)."""
    return ip[:IP_MAX], printable(user_agent)[:USER_AGENT_MAX]


@dataclass(frozen=True)
class SessionView:
    """A live session as a request sees it (the ORM record is for the device list)."""

    id: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    remember: bool


@dataclass(frozen=True)
class ActiveSession:
    """A resolved, still-valid session and its user."""

    record: SessionView
    user: SignedInUser


SESSION_FIELDS = tuple(field.name for field in fields(SessionView))  # read per request


class SessionService:
    """Start, resolve, list and end server-side sessions."""

    def __init__(
        self,
        db: DbSession,
        models: Models,
        identities: Identities,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._db = db
        self._identities = identities
        self._models = models
        self._settings = settings
        self._clock = clock

    def start(self, user: UserMixin, *, remember: bool, ip: str, user_agent: str) -> str:
        """Create a session for ``user`` and return its id: a new one each time (no fixation)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        lifetime = self._settings.remember_lifetime if remember else self._settings.session_lifetime
        ip, user_agent = stored_client(ip, user_agent)
        record = self._models.Session(
            id=digest(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=lifetime),
            ip=ip,
            user_agent=user_agent,
            remember=remember,
        )
        self._db.add(record)
        self._db.commit()
        return token

    def resolve(self, token: str) -> ActiveSession | None:
        """Return the live session of a token, or None when unknown, ended or expired."""
        return self.resolve_id(digest(token))

    @cached_property
    def _lookup(self) -> Select[Any]:
        """The per-request statement, composed once: the session, its user's identity fields
        and role names in one round trip (a row per role), as plain rows."""
        Session, User = self._models.Session, self._models.User
        columns = [getattr(Session, name).label(f"s_{name}") for name in SESSION_FIELDS]
        query = select(*columns, *self._identities.columns()).join(User, User.id == Session.user_id)
        return self._identities.with_roles(query).where(
            Session.id == bindparam("session_id"), ~self._over()
        )

    def resolve_id(self, session_id: str) -> ActiveSession | None:
        """Like resolve, by the stored id (API sessions, whose raw id is never handed out).

        Read on a connection of its own, outside the ORM session (see identities.py):
        one SELECT, and once a minute an UPDATE of last-seen.
        """
        times = self._times()
        Session = self._models.Session
        with self._identities.connection() as connection:
            rows = connection.execute(self._lookup, {"session_id": session_id, **times}).all()
            if not rows:  # unknown, or over: then it goes now (it would on its owner's list)
                gone = delete(Session).where(Session.id == session_id, self._over())
                connection.execute(gone, times)
                self._identities.commit(connection)
                return None
            first = rows[0]._mapping
            if not first["u_active"]:
                return None
            record = SessionView(*(first[f"s_{name}"] for name in SESSION_FIELDS))
            now = times["now"]
            if now - record.last_seen_at >= TOUCH_INTERVAL:
                touch = update(Session).where(Session.id == session_id).values(last_seen_at=now)
                connection.execute(touch)
                self._identities.commit(connection)
        return ActiveSession(record, self._identities.build(rows))

    def end(self, token: str) -> None:
        """End one session by the token the browser holds."""
        self._db.execute(
            delete(self._models.Session).where(self._models.Session.id == digest(token))
        )
        self._db.commit()

    def end_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of a user at once (but the one of token ``keep``); count them."""
        Session = self._models.Session
        self._purge_expired(user_id)  # already over: not counted as ended now
        condition = Session.user_id == user_id
        if keep is not None:
            condition &= Session.id != digest(keep)
        result = self._db.execute(delete(Session).where(condition))
        self._db.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    def end_one(self, user_id: int, session_id: str) -> bool:
        """End one of ``user_id``'s sessions by its id; tell whether there was one."""
        Session = self._models.Session
        condition = (Session.id == session_id) & (Session.user_id == user_id)
        result = self._db.execute(delete(Session).where(condition))
        self._db.commit()
        return int(result.rowcount) > 0  # type: ignore[attr-defined]

    def stage_end_all(self, user_id: int) -> int:
        """Delete a user's sessions in the caller's transaction, to commit with its other writes."""
        Session = self._models.Session
        result = self._db.execute(delete(Session).where(Session.user_id == user_id))
        return int(result.rowcount)  # type: ignore[attr-defined]

    def list_for(self, user_id: int) -> Sequence[SessionMixin]:
        """Return a user's live sessions, most recently used first."""
        Session = self._models.Session
        self._purge_expired(user_id)
        query = select(Session).where(Session.user_id == user_id)
        return self._db.scalars(query.order_by(Session.last_seen_at.desc())).all()

    def _purge_expired(self, user_id: int) -> None:
        """Delete the user's sessions that timed out (they end lazily, on their next request)."""
        Session = self._models.Session
        query = delete(Session).where(Session.user_id == user_id, self._over())
        self._db.execute(query, self._times())
        self._db.commit()

    def _over(self) -> ColumnElement[bool]:
        """The one rule for a session that has ended by time: past its absolute lifetime, or
        idle too long unless remembered (remember-me sessions are bounded by their lifetime
        only, ASVS 3.3.2). Bound to ``now`` and ``idle_since`` (see _times)."""
        Session = self._models.Session
        return (Session.expires_at <= bindparam("now")) | (
            Session.remember.is_(False) & (Session.last_seen_at <= bindparam("idle_since"))
        )

    def _times(self) -> dict[str, datetime]:
        now = self._clock()
        return {
            "now": now,
            "idle_since": now - timedelta(seconds=self._settings.session_idle_timeout),
        }
