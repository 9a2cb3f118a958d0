"""The security audit log (OWASP ASVS 7.1, 7.2): who did what, when, from where.

Rows hold the event, the user, the time (UTC), IP, browser and a small JSON
detail. They never hold a password, token or session id: detail keys that
look like one are dropped before writing. Every event is also sent as a
blinker signal (see :mod:`flask_portcullis.signals`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from . import signals
from .audit_events import LABELS, Event
from .clock import Clock
from .models import AuditEventMixin, DbSession, Models
from .sessions import stored_client

logger = logging.getLogger("flask_portcullis.audit")
DETAIL_MAX = 2000
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "pin",
    "token",
    "secret",
    "session_id",
    "code",
    "credential",
    "cookie",
    "authorization",
    "otp",
    "key",
)


class AuditLog:
    """Append security events and read them back."""

    def __init__(self, db: DbSession, models: Models, clock: Clock, sender: object = None) -> None:
        """``sender`` is what the signals are sent with: the app, so hosts can connect_via it."""
        self._db = db
        self._models = models
        self._clock = clock
        self._sender = sender

    def record(
        self,
        event: Event,
        *,
        user_id: int | None = None,
        ip: str = "",
        user_agent: str = "",
        **detail: Any,
    ) -> None:
        """Write one event (in its own transaction) and send its signals."""
        announce = self.stage(event, user_id=user_id, ip=ip, user_agent=user_agent, **detail)
        try:
            self._db.commit()
        except SQLAlchemyError:
            # The action itself is done; losing its log row must not turn it into an error.
            self._db.rollback()
            logger.error("could not write audit event %s for user %s", event, user_id)
        announce()

    def stage(
        self,
        event: Event,
        *,
        user_id: int | None = None,
        ip: str = "",
        user_agent: str = "",
        **detail: Any,
    ) -> Callable[[], None]:
        """Add one event to the caller's transaction, to commit with the change it records
        (neither lands without the other); return what sends its signals, for after the
        commit."""
        safe = _without_secrets(detail)
        ip, user_agent = stored_client(ip, user_agent)
        row = self._models.AuditEvent(
            at=self._clock(),
            user_id=user_id,
            event=str(event),
            ip=ip,
            user_agent=user_agent,
            detail=_detail_json(safe),
        )
        self._db.add(row)
        sender = self._sender
        payload: dict[str, Any] = {
            "user_id": user_id,
            "ip": ip,
            "user_agent": user_agent,
            "detail": safe,
        }

        def announce() -> None:
            signals.BY_EVENT[event].send(sender, **payload)
            signals.security_event.send(sender, event=event, **payload)

        return announce

    def recent(self, user_id: int, limit: int = 50) -> Sequence[AuditEventMixin]:
        """Return a user's latest events, newest first."""
        AuditEvent = self._models.AuditEvent
        query = select(AuditEvent).where(AuditEvent.user_id == user_id)
        return self._db.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)).all()

    def search(
        self,
        where: LogFilter | None = None,
        *,
        event: str = "",
        before: int | None = None,
        limit: int = 100,
    ) -> Sequence[AuditEventMixin]:
        """The latest events of every user matching ``where`` (or just of kind ``event``),
        newest first; ``before``: only events older than that id (the next page: keyset
        pagination stays as fast on the millionth row as on the first)."""
        AuditEvent = self._models.AuditEvent
        where = where or LogFilter(event=event)
        query = select(AuditEvent)
        if where.user_id is not None:
            query = query.where(AuditEvent.user_id == where.user_id)
        if where.event:
            query = query.where(AuditEvent.event == where.event)
        if where.ip:
            query = query.where(AuditEvent.ip == where.ip)
        if where.since is not None:
            query = query.where(AuditEvent.at >= where.since)
        if where.until is not None:
            query = query.where(AuditEvent.at < where.until)
        if before is not None:
            query = query.where(AuditEvent.id < before)
        return self._db.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)).all()

    def is_new_device(self, user_id: int, ip: str, user_agent: str) -> bool:
        """Tell whether this sign-in comes from an IP and browser the user never signed in from.

        The very first sign-in of an account is not "new": there is nothing to compare.
        """
        AuditEvent = self._models.AuditEvent
        sign_ins = select(AuditEvent.id).where(
            AuditEvent.user_id == user_id, AuditEvent.event == str(Event.SIGN_IN)
        )
        if self._db.scalars(sign_ins.limit(1)).first() is None:
            return False
        ip, user_agent = stored_client(ip, user_agent)
        same_device = sign_ins.where(AuditEvent.ip == ip, AuditEvent.user_agent == user_agent)
        return self._db.scalars(same_device.limit(1)).first() is None

    def failures_since_sign_in(self, user_id: int) -> int:
        """Count failed sign-ins since the user's previous successful one."""
        AuditEvent = self._models.AuditEvent
        last = self._db.scalar(
            select(func.max(AuditEvent.id)).where(
                AuditEvent.user_id == user_id, AuditEvent.event == str(Event.SIGN_IN)
            )
        )
        query = select(func.count(AuditEvent.id)).where(
            AuditEvent.user_id == user_id,
            AuditEvent.event == str(Event.SIGN_IN_FAILED),
            AuditEvent.id > (last or 0),
        )
        return int(self._db.scalar(query) or 0)

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before`` (the retention period); return how many."""
        AuditEvent = self._models.AuditEvent
        result = self._db.execute(delete(AuditEvent).where(AuditEvent.at < before))
        self._db.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def _detail_json(detail: dict[str, Any]) -> str:
    """Serialise ``detail``; one too long to keep whole keeps its keys, still valid JSON."""
    text = json.dumps(detail, default=str, ensure_ascii=False)
    if len(text) <= DETAIL_MAX:
        return text
    return json.dumps({"truncated": True, "keys": sorted(detail)[:50]}, ensure_ascii=False)[
        :DETAIL_MAX
    ]


def _without_secrets(detail: dict[str, Any]) -> dict[str, Any]:
    """Drop every key that looks like it holds a secret, at any depth."""
    clean: dict[str, Any] = {}
    for key, value in detail.items():
        if any(word in str(key).lower() for word in _SECRET_WORDS):
            continue
        clean[key] = _without_secrets(value) if isinstance(value, dict) else value
    return clean


@dataclass(frozen=True)
class LogFilter:
    """What the security log is narrowed to; each part optional."""

    user_id: int | None = None
    event: str = ""
    ip: str = ""
    since: datetime | None = None  # from this moment
    until: datetime | None = None  # up to, not including, this one


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection):
    a value that starts like one gets a leading apostrophe."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def activity_row(event: AuditEventMixin) -> dict[str, str]:
    """One event as its owner sees it (the activity page, the account export): when, what,
    in words, and from where; never the detail, which may name other accounts."""
    return {
        "at": event.at.isoformat(),
        "event": event.event,
        "label": LABELS.get(Event(event.event), event.event),
        "ip": event.ip,
        "user_agent": event.user_agent,
    }
