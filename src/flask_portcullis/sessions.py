"""Server-side session records: every signed-in device is a row the server can end.

Two names, never mixed: the browser holds a random session *token* (256
bits) inside Flask's signed cookie; the database holds only its SHA-256
digest, the session's *id* (the row's key, what lists show and the API's
``/sessions/{session_id}`` names), so a leaked table cannot be replayed.
Every request resolves the token, so ending a record ends the session at once
(OWASP ASVS 3.3.1, 3.3.3). The records live in a store (session_stores.py);
the rules here hold for every store.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete

from .caches import mark_stale
from .clock import Clock
from .models import DbSession, Models, SignedInUser, UserMixin
from .session_stores import SessionRecord, SessionStore, SessionView, seconds_left
from .settings import Settings

# Write last-seen at most this often: one UPDATE a minute, not one per request.
TOUCH_INTERVAL = timedelta(seconds=60)
SESSION_ID = re.compile(r"[0-9a-f]{64}")  # what digest() makes
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
class ActiveSession:
    """A resolved, still-valid session and its user."""

    record: SessionView
    user: SignedInUser


__all__ = ["ActiveSession", "SessionRecord", "SessionService", "SessionView", "digest"]


class SessionService:
    """Start, resolve, list and end server-side sessions, in whichever store holds them."""

    def __init__(
        self,
        db: DbSession,
        models: Models,
        store: SessionStore,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._db = db
        self._models = models
        self.store = store
        self._settings = settings
        self._clock = clock
        self._idle = timedelta(seconds=settings.session_idle_timeout)

    def start(self, user: UserMixin, *, remember: bool, ip: str, user_agent: str) -> str:
        """Create a session for ``user`` and return its token: a new one each time (no
        fixation)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        lifetime = self._settings.remember_lifetime if remember else self._settings.session_lifetime
        ip, user_agent = stored_client(ip, user_agent)
        record = SessionRecord(
            id=digest(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=lifetime),
            remember=remember,
            ip=ip,
            user_agent=user_agent,
        )
        self.store.add(record, self._ttl(record, now))
        self._db.commit()
        return token

    def resolve(self, token: str, user_hint: int | None = None) -> ActiveSession | None:
        """Return the live session of a token, or None when unknown, ended or expired."""
        return self.resolve_id(digest(token), user_hint)

    def resolve_id(self, session_id: str, user_hint: int | None = None) -> ActiveSession | None:
        """Like resolve, by the stored id (API sessions, whose raw id is never handed out).

        One read of the store (with the SQL store: one SELECT), and once a minute a
        write of last-seen. ``user_hint``: the user the client claims, to read at once.
        """
        found = self.store.find(session_id, user_hint)
        if found is None:
            return None
        record, user = found
        now = self._clock()
        if self.over(record, now):  # it goes now (it would stay on its owner's list)
            self._end([session_id])
            return None
        if user is None or not user.active:
            return None
        if now - record.last_seen_at >= TOUCH_INTERVAL:
            record = replace(record, last_seen_at=now)
            if not self.store.touch(record, self._ttl(record, now)):
                return None  # ended meanwhile (a cache that still held it has heard now)
        return ActiveSession(record, user)

    def user(self, user_id: int) -> SignedInUser | None:
        """A user as a signed-in request sees them (the bearer-token check), from the store's
        source: the database, or its cache."""
        return self.store.user(user_id)

    def users_changed(self, user_ids: Sequence[int]) -> None:
        """Say that these users' identity fields or roles changed outside the ORM (a Core
        UPDATE): a store's cached copies are marked stale now and again at the commit. ORM
        changes are seen without this."""
        users = self.store.users
        if users is not None:
            mark_stale(users.cache, self._db, [users.key(user_id) for user_id in user_ids])

    def end(self, token: str, *, commit: bool = True) -> None:
        """End one session by the token the browser holds."""
        self._end([digest(token)], commit=commit)

    def end_id(self, session_id: str) -> int | None:
        """End one session by its id; return its user's id (None when it was gone)."""
        ended = self._end([session_id])
        return ended[0].user_id if ended else None

    def end_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of a user at once (but the one of token ``keep``); count those
        still live (the timed-out ones ended already, lazily)."""
        count = self.stage_end_all(user_id, keep=keep)
        self._db.commit()
        return count

    def end_one(self, user_id: int, session_id: str) -> bool:
        """End one of ``user_id``'s sessions by its id; tell whether there was one."""
        if not SESSION_ID.fullmatch(session_id):  # from a form or a URL: nothing to end
            return False
        ended = self.store.remove([session_id], user_id)
        self._forget_refresh_tokens([view.id for view in ended])
        self._db.commit()
        return bool(ended)

    def stage_end_all(self, user_id: int, *, keep: str | None = None) -> int:
        """End a user's sessions with the caller's transaction (the SQL store's rows commit
        with its other writes; Redis's go at once, before it: failing safe, signed out)."""
        now = self._clock()
        ended = self.store.remove_user(user_id, None if keep is None else digest(keep))
        self._forget_refresh_tokens([view.id for view in ended])
        return sum(not self.over(view, now) for view in ended)

    def list_for(self, user_id: int) -> Sequence[SessionRecord]:
        """Return a user's live sessions, most recently used first (ending the timed-out)."""
        now = self._clock()
        records = self.store.of_user(user_id)
        over = [record.id for record in records if self.over(record, now)]
        if over:
            self._end(over)
        live = [record for record in records if record.id not in over]
        return sorted(live, key=lambda record: record.last_seen_at, reverse=True)

    def over(self, record: SessionView, now: datetime) -> bool:
        """The one rule for a session that has ended by time: past its absolute lifetime, or
        idle too long unless remembered (remember-me sessions are bounded by their lifetime
        only, ASVS 3.3.2)."""
        if record.expires_at <= now:
            return True
        return not record.remember and record.last_seen_at <= now - self._idle

    def _ttl(self, record: SessionView, now: datetime) -> int:
        """How long a store may keep ``record`` (then it is over anyway)."""
        until = record.expires_at
        if not record.remember:
            until = min(until, record.last_seen_at + self._idle)
        return seconds_left(until, now)

    def _end(self, session_ids: Sequence[str], *, commit: bool = True) -> list[SessionView]:
        ended = self.store.remove(session_ids)
        self._forget_refresh_tokens([view.id for view in ended])
        if commit:
            self._db.commit()
        return ended

    def _forget_refresh_tokens(self, session_ids: Sequence[str]) -> None:
        """An ended session's refresh tokens go with it (in the caller's transaction)."""
        if session_ids:
            RefreshToken = self._models.RefreshToken
            self._db.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(session_ids)))
