"""Trusted devices: browsers and API clients that signed in to an account before.

OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a client
that once gave the right password gets a token naming the account and a
random nonce, signed with the app's secret key. Its later sign-in attempts
on that account are counted under the device's own budget instead of the
account's shared counter, so failures from anywhere else neither delay nor
lock the owner (NIST SP 800-63B 5.2.2: throttling must not hand an attacker
a denial of service). Only a SHA-256 digest of the nonce is stored; a token
whose signature fails is refused before any database lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlalchemy import delete, select

from .clock import Clock
from .models import DbSession, Models, TrustedDeviceMixin, UserMixin
from .sessions import stored_client

BROWSER = "browser"
API = "api"
KINDS = (BROWSER, API)
# A device unused for this long is no longer trusted (the browser cookie lives as long).
DEVICE_LIFETIME = timedelta(days=365)
TOKEN_MAX = 256  # far above a real token (about 90 characters), far below anything costly
SALT = "portcullis.trusted-device"


@dataclass(frozen=True)
class Trust:
    """The token to hand (back) to the client, and whether its device is new."""

    token: str
    device: TrustedDeviceMixin
    new: bool


class DeviceService:
    """Make, check, list and revoke trusted devices. ``secret_keys``: old first, current last."""

    def __init__(
        self, db: DbSession, models: Models, secret_keys: Sequence[str], clock: Clock
    ) -> None:
        self._db = db
        self._models = models
        self._signer = Signer([str(key) for key in secret_keys], salt=SALT)
        self._clock = clock

    # -- tokens ----------------------------------------------------------------

    def make(
        self, user: UserMixin, *, kind: str, ip: str, user_agent: str, commit: bool = True
    ) -> Trust:
        """Trust a new device of ``user`` and return its token (shown to the client once).
        Without ``commit``, the row joins the caller's transaction."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        nonce = secrets.token_urlsafe(32)
        now = self._clock()
        ip, user_agent = stored_client(ip, user_agent)
        device = self._models.TrustedDevice(
            id=digest(nonce),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            ip=ip,
            user_agent=user_agent,
            kind=kind,
        )
        self._db.add(device)
        if commit:
            self._db.commit()
        return Trust(self._signer.sign(f"{user.id}.{nonce}").decode(), device, new=True)

    def get(self, user_id: int | None, tokens: Iterable[str]) -> TrustedDeviceMixin | None:
        """The live device of ``user_id`` that one of ``tokens`` names, or None.

        A token for another account, a forged or altered one, a malformed
        one and one whose device was revoked or expired all give None, and
        only a validly signed token for this account reaches the database.
        """
        found = self._find(user_id, tokens)
        return found[0] if found is not None else None

    def _find(
        self, user_id: int | None, tokens: Iterable[str]
    ) -> tuple[TrustedDeviceMixin, str] | None:
        """The live device one of ``tokens`` names for ``user_id``, with that token."""
        for token in tokens:
            record_id = self.record_id(user_id, token)
            if record_id is None:
                continue
            device = self._db.get(self._models.TrustedDevice, record_id)
            if device is not None and device.user_id == user_id and not self._expired(device):
                return device, token
        return None

    def record_id(self, user_id: int | None, token: str) -> str | None:
        """The stored id of the device ``token`` names if it is validly signed for
        ``user_id``, else None. No database lookup: says nothing about revocation."""
        found = self._unsign(token)
        if found is None or user_id is None or not hmac.compare_digest(found[0], str(user_id)):
            return None
        return digest(found[1])

    def user_id_of(self, token: str) -> int | None:
        """The account a validly signed token was made for (None when forged or malformed)."""
        found = self._unsign(token)
        return int(found[0]) if found is not None else None

    def trust(
        self,
        user: UserMixin,
        tokens: Iterable[str],
        *,
        kind: str,
        ip: str,
        user_agent: str,
        commit: bool = True,
    ) -> Trust:
        """After a sign-in: refresh the device one of ``tokens`` names for ``user``, or trust
        a new one. Returns the token the client keeps (unchanged for a known device)."""
        found = self._find(user.id, tokens)
        if found is None:
            return self.make(user, kind=kind, ip=ip, user_agent=user_agent, commit=commit)
        device, token = found
        self.touch(device, ip=ip, user_agent=user_agent, commit=commit)
        return Trust(token, device, new=False)

    def touch(
        self, device: TrustedDeviceMixin, *, ip: str, user_agent: str, commit: bool = True
    ) -> None:
        """Note that ``device`` was used just now, from this address and browser."""
        device.last_used_at = self._clock()
        device.ip, device.user_agent = stored_client(ip, user_agent)
        if commit:
            self._db.commit()

    # -- the owner's list --------------------------------------------------------

    def list_for(self, user_id: int) -> Sequence[TrustedDeviceMixin]:
        """A user's trusted devices, most recently used first (expired ones go now)."""
        TrustedDevice = self._models.TrustedDevice
        self._db.execute(
            delete(TrustedDevice).where(
                TrustedDevice.user_id == user_id,
                TrustedDevice.last_used_at <= self._clock() - DEVICE_LIFETIME,
            )
        )
        self._db.commit()
        query = select(TrustedDevice).where(TrustedDevice.user_id == user_id)
        return self._db.scalars(query.order_by(TrustedDevice.last_used_at.desc())).all()

    def revoke_one(self, user_id: int, record_id: str) -> bool:
        """Stop trusting one of ``user_id``'s devices by its stored id; tell whether there was
        one."""
        TrustedDevice = self._models.TrustedDevice
        condition = (TrustedDevice.id == record_id) & (TrustedDevice.user_id == user_id)
        result = self._db.execute(delete(TrustedDevice).where(condition))
        self._db.commit()
        return int(result.rowcount) > 0  # type: ignore[attr-defined]

    def stage_revoke_all(self, user_id: int, *, keep: str | None = None) -> int:
        """Stop trusting every device of a user (but the one whose stored id is ``keep``), in
        the caller's transaction (to commit with its other writes)."""
        TrustedDevice = self._models.TrustedDevice
        condition = TrustedDevice.user_id == user_id
        if keep is not None:
            condition &= TrustedDevice.id != keep
        result = self._db.execute(delete(TrustedDevice).where(condition))
        return int(result.rowcount)  # type: ignore[attr-defined]

    # -- helpers -------------------------------------------------------------------

    def _unsign(self, token: str) -> tuple[str, str] | None:
        if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX or not token.isascii():
            return None
        try:
            value = self._signer.unsign(token).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        user_id, _, nonce = value.partition(".")
        if not user_id.isdigit() or len(user_id) > 18 or not nonce:
            return None
        return user_id, nonce

    def _expired(self, device: TrustedDeviceMixin) -> bool:
        last_used: datetime = device.last_used_at
        return last_used <= self._clock() - DEVICE_LIFETIME


def digest(nonce: str) -> str:
    """The stored form of a device nonce."""
    return hashlib.sha256(nonce.encode()).hexdigest()
