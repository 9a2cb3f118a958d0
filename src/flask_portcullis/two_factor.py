"""Time-based one-time passwords (RFC 6238) and single-use recovery codes.

The shared secret is encrypted at rest (Fernet, with keys derived from
``SECRET_KEY`` and its fallbacks, so rotation keeps it readable) and never
shown again after setup. A code is accepted within one 30-second step of
drift, and each step only once: the last used step is stored, so a code seen
over someone's shoulder cannot be replayed. Recovery codes are stored only
as SHA-256 digests (they are 80 random bits: no slow hash needed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, exists, func, select, update

from .clock import Clock
from .exceptions import InvalidCode
from .models import DbSession, Models, UserMixin

STEP = 30
DRIFT_STEPS = 1
RECOVERY_CODES = 10


def _fernet_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"portcullis.totp", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def _digest(code: str) -> str:
    return hashlib.sha256(normalize_recovery_code(code).encode()).hexdigest()


def normalize_recovery_code(code: str) -> str:
    """Recovery codes are read off paper: ignore case, spaces and dashes."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits, 16 characters
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class Setup:
    """A secret offered to a user, not yet confirmed with a code."""

    secret: str
    uri: str


class TwoFactorService:
    def __init__(
        self,
        db: DbSession,
        models: Models,
        secret_keys: Sequence[str],
        issuer: str,
        clock: Clock,
    ) -> None:
        self._db = db
        self._models = models
        # Current key first: MultiFernet encrypts with the first, decrypts with any.
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in reversed(secret_keys)])
        self._issuer = issuer
        self._clock = clock

    # -- state -------------------------------------------------------------------------

    def has_totp(self, user: UserMixin) -> bool:
        return self._db.get(self._models.TwoFactor, user.id) is not None

    def is_enabled(self, user: UserMixin) -> bool:
        """Tell whether sign-in needs a second factor: a TOTP app or a passkey (one query)."""
        TwoFactor, Passkey = self._models.TwoFactor, self._models.Passkey
        query = select(
            exists().where(TwoFactor.user_id == user.id)
            | exists().where(Passkey.user_id == user.id)
        )
        return bool(self._db.scalar(query))

    def recovery_codes_left(self, user: UserMixin) -> int:
        RecoveryCode = self._models.RecoveryCode
        query = select(func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
        return int(self._db.scalar(query) or 0)

    # -- setup -------------------------------------------------------------------------

    def begin(self, user: UserMixin) -> Setup:
        """A fresh secret and its otpauth:// URI (for the QR code); nothing is stored yet."""
        secret = pyotp.random_base32(32)  # 160 bits (RFC 4226 recommends at least 128)
        return Setup(secret, self.uri(user, secret))

    def seal(self, secret: str) -> str:
        """Encrypt a secret for keeping in the (signed, not encrypted) session cookie."""
        return self._fernet.encrypt(secret.encode()).decode()

    def unseal(self, sealed: str) -> str | None:
        """The secret inside ``seal``'s output, or None when it is not one of ours."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None

    def uri(self, user: UserMixin, secret: str) -> str:
        """The otpauth:// URI an authenticator app reads from the QR code."""
        return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=self._issuer)

    def enable(self, user: UserMixin, secret: str, code: str) -> list[str]:
        """Store ``secret`` once ``code`` proves the app has it; return new recovery codes."""
        step = self._matching_step(secret, code, after=-1)
        if step is None:
            raise InvalidCode("That code does not match. Check the time on your phone.")
        TwoFactor = self._models.TwoFactor
        self._db.execute(delete(TwoFactor).where(TwoFactor.user_id == user.id))
        self._db.add(
            TwoFactor(
                user_id=user.id,
                secret=self.seal(secret),
                last_step=step,
                enabled_at=self._clock(),
            )
        )
        return self.regenerate_recovery_codes(user)  # commits both

    def disable(self, user: UserMixin) -> None:
        """Remove the TOTP secret (the caller checks re-authentication); the recovery codes
        stay while a passkey is still a second factor."""
        TwoFactor = self._models.TwoFactor
        self._db.execute(delete(TwoFactor).where(TwoFactor.user_id == user.id))
        self._db.commit()
        self.factor_removed(user)

    def factor_removed(self, user: UserMixin) -> None:
        """After a factor is removed: with none left, the recovery codes go too."""
        if not self.is_enabled(user):
            RecoveryCode = self._models.RecoveryCode
            self._db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
            self._db.commit()

    def reset(self, user: UserMixin) -> None:
        """Remove every second factor, passkeys included: the admin's reset, which makes the
        user enrol again and never reveals a secret."""
        for model in (self._models.TwoFactor, self._models.RecoveryCode, self._models.Passkey):
            self._db.execute(delete(model).where(model.user_id == user.id))
        self._db.commit()

    def ensure_recovery_codes(self, user: UserMixin) -> list[str]:
        """New recovery codes if the user has no unused ones (the first passkey), else none."""
        return [] if self.recovery_codes_left(user) else self.regenerate_recovery_codes(user)

    def regenerate_recovery_codes(self, user: UserMixin) -> list[str]:
        """Void the old set and return a new one (shown once)."""
        RecoveryCode = self._models.RecoveryCode
        self._db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        for code in codes:
            self._db.add(RecoveryCode(user_id=user.id, code_hash=_digest(code)))
        self._db.commit()
        return codes

    # -- sign-in -------------------------------------------------------------------------

    def verify(self, user: UserMixin, code: str) -> str:
        """Accept a current TOTP code or an unused recovery code; return which ("totp" or
        "recovery"), or raise InvalidCode. Either is usable once only."""
        compact = "".join(code.split())
        if compact.isascii() and compact.isdigit() and len(compact) == 6:
            record = self._db.get(self._models.TwoFactor, user.id)
            if record is None:
                raise InvalidCode("There is no authenticator app on this account.")
            secret = self.unseal(record.secret)
            if secret is None:
                raise InvalidCode("The second factor cannot be read; ask an admin.")
            step = self._matching_step(secret, compact, after=record.last_step)
            if step is not None:
                # RFC 6238 5.2: a step is used once. Claimed with one conditional UPDATE, so
                # of two requests racing with one code, only one gets through.
                TwoFactor = self._models.TwoFactor
                claimed = self._db.execute(
                    update(TwoFactor)
                    .where(TwoFactor.user_id == user.id, TwoFactor.last_step < step)
                    .values(last_step=step)
                )
                self._db.commit()
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return "totp"
            raise InvalidCode("That code is not right, or was used already.")
        # Claimed with one conditional UPDATE: of two requests racing with one code, one wins.
        RecoveryCode = self._models.RecoveryCode
        claimed = self._db.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _digest(code),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=self._clock())
        )
        self._db.commit()
        if not claimed.rowcount:  # type: ignore[attr-defined]
            raise InvalidCode("That code is not right, or was used already.")
        return "recovery"

    def next_code(self, user: UserMixin) -> str | None:
        """Return a TOTP code that ``verify`` would accept now, or None (no app, or every step
        in the drift window used). For tests (flask_portcullis.testing): it is what the
        user's app shows now, or its next code when the current one was used already."""
        record = self._db.get(self._models.TwoFactor, user.id)
        secret = self.unseal(record.secret) if record is not None else None
        if record is None or secret is None:
            return None
        now_step = int(self._clock().timestamp()) // STEP
        step = max(now_step, record.last_step + 1)  # RFC 6238 5.2: a used step is refused
        if step > now_step + DRIFT_STEPS:
            return None
        return pyotp.TOTP(secret, interval=STEP).at(step * STEP)

    # -- internals -----------------------------------------------------------------------

    def _matching_step(self, secret: str, code: str, *, after: int) -> int | None:
        code = code.strip()
        if not (code.isascii() and code.isdigit()):  # "١٢٣٤٥٦" is digits too, but not ours
            return None
        totp = pyotp.TOTP(secret, interval=STEP)
        now_step = int(self._clock().timestamp()) // STEP
        for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
            expected = totp.at(step * STEP)
            if step > after and hmac.compare_digest(expected, code):
                return step
        return None
