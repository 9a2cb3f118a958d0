"""A user's own data, assembled for download (OWASP ASVS 8.3.2; GDPR articles 15 and 20)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .audit import AuditLog, activity_row
from .devices import DeviceService
from .federation import Federation
from .models import UserMixin
from .passkeys import PasskeyService
from .sessions import SessionService

ACTIVITY_LIMIT = 1000  # the newest events; the log itself is pruned by age


class AccountExport:
    """Collect everything kept about one user as JSON-ready values, so an adapter only
    serialises it. Never a password hash, a session id, a passkey's key or a device's id:
    those are secrets or only of use to the cookie's owner."""

    def __init__(
        self,
        sessions: SessionService,
        devices: DeviceService,
        audit: AuditLog,
        passkeys: PasskeyService,
        federation: Federation,
    ) -> None:
        self._sessions = sessions
        self._devices = devices
        self._audit = audit
        self._passkeys = passkeys
        self._federation = federation

    def collect(self, user: UserMixin) -> dict[str, Any]:
        """Return the profile, sessions, recent activity, passkeys, trusted devices and the
        sign-in providers linked."""
        return {
            "username": user.username,
            "email": user.email,
            "email_verified_at": _iso(user.email_verified_at),
            "active": user.active,
            "created_at": _iso(user.created_at),
            "last_login_at": _iso(user.last_login_at),
            "roles": sorted(role.name for role in user.roles),
            "sessions": [
                {
                    "created_at": _iso(s.created_at),
                    "last_seen_at": _iso(s.last_seen_at),
                    "ip": s.ip,
                    "user_agent": s.user_agent,
                    "remember": s.remember,
                }
                for s in self._sessions.list_for(user.id)
            ],
            "activity": [
                activity_row(event) for event in self._audit.recent(user.id, limit=ACTIVITY_LIMIT)
            ],
            "passkeys": [
                {
                    "name": passkey.name,
                    "created_at": _iso(passkey.created_at),
                    "last_used_at": _iso(passkey.last_used_at),
                }
                for passkey in self._passkeys.list_for(user)
            ],
            "trusted_devices": [
                {
                    "kind": device.kind,
                    "created_at": _iso(device.created_at),
                    "last_used_at": _iso(device.last_used_at),
                    "ip": device.ip,
                    "user_agent": device.user_agent,
                }
                for device in self._devices.list_for(user.id)
            ],
            "sign_in_providers": [
                {
                    "provider": link.provider,
                    "subject": link.subject,
                    "email": link.email,
                    "created_at": _iso(link.created_at),
                    "last_used_at": _iso(link.last_used_at),
                }
                for link in self._federation.links_of(user.id)
            ],
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
