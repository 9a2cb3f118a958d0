"""Hash and verify passwords: argon2id for new hashes, legacy formats verified and upgraded.

The design follows django.contrib.auth.hashers: an ordered list of hashers,
the first one hashes, every one verifies its own format, and a hash made by
any but the first (or with weaker parameters) is flagged for rehash.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import argon2
import bcrypt
from werkzeug.security import check_password_hash

from .settings import Settings


def normalize_password(password: str) -> str:
    """Apply NFKC so the same password typed on any keyboard hashes alike (NIST 800-63B 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


class Hasher(Protocol):
    """One password-hash format. Implement it to verify hashes from another system."""

    def identify(self, encoded: str) -> bool:
        """Tell whether ``encoded`` is in this hasher's format."""

    def verify(self, password: str, encoded: str) -> bool:
        """Check ``password`` against ``encoded`` in constant time."""

    def hash(self, password: str) -> str:
        """Hash ``password`` (only the first hasher's ``hash`` is used)."""

    def needs_rehash(self, encoded: str) -> bool:
        """Tell whether ``encoded`` is weaker than what ``hash`` would make now."""


class Argon2Hasher:
    """argon2id via argon2-cffi (RFC 9106), the default for every new hash."""

    def __init__(self, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )

    def identify(self, encoded: str) -> bool:
        return encoded.startswith("$argon2")

    def verify(self, password: str, encoded: str) -> bool:
        try:
            return self._hasher.verify(encoded, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def needs_rehash(self, encoded: str) -> bool:
        return self._hasher.check_needs_rehash(encoded)


class WerkzeugHasher:
    """Werkzeug's ``pbkdf2:`` and ``scrypt:`` hashes, as the Flask tutorials store them."""

    def identify(self, encoded: str) -> bool:
        return encoded.startswith(("pbkdf2:", "scrypt:"))

    def verify(self, password: str, encoded: str) -> bool:
        try:
            return check_password_hash(encoded, password)
        except (ValueError, TypeError):
            return False

    def hash(self, password: str) -> str:
        raise TypeError("WerkzeugHasher only verifies legacy hashes; put it after Argon2Hasher.")

    def needs_rehash(self, encoded: str) -> bool:
        return True


class BcryptHasher:
    """bcrypt hashes as made by Flask-Bcrypt or the bcrypt package (``$2a$``/``$2b$``/``$2y$``)."""

    def identify(self, encoded: str) -> bool:
        return encoded.startswith(("$2a$", "$2b$", "$2y$"))

    def verify(self, password: str, encoded: str) -> bool:
        # bcrypt only ever read the first 72 bytes; do the same to verify old
        # hashes. The rehash that follows keeps the whole password.
        secret = password.encode()[:72]
        try:
            return bcrypt.checkpw(secret, encoded.encode())
        except ValueError:
            return False

    def hash(self, password: str) -> str:
        raise TypeError("BcryptHasher only verifies legacy hashes; put it after Argon2Hasher.")

    def needs_rehash(self, encoded: str) -> bool:
        return True


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a password: ``ok``, and whether to store a fresh hash."""

    ok: bool
    needs_rehash: bool = False


@dataclass
class PasswordHashing:
    """Hash with the first hasher, verify with whichever recognises the format."""

    hashers: Sequence[Hasher]
    _dummy: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Made up front so the first unknown user of a process costs no more than later ones.
        self._dummy = self.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHashing:
        """Build the default chain: argon2id at the configured cost, then legacy formats."""
        primary = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
        return cls([primary, WerkzeugHasher(), BcryptHasher()])

    def hash(self, password: str) -> str:
        """Hash a password with the preferred hasher."""
        return self.hashers[0].hash(normalize_password(password))

    def verify(self, password: str, encoded: str | None) -> Verification:
        """Check a password; a missing or unknown hash costs one dummy verify and fails."""
        hasher = self._hasher_for(encoded) if encoded else None
        if encoded is None or hasher is None:
            self.verify_dummy(password)
            return Verification(ok=False)
        normalized = normalize_password(password)
        ok = hasher.verify(normalized, encoded)
        if not ok and normalized != password and hasher is not self.hashers[0]:
            # Legacy systems hashed the password as typed, without NFKC.
            ok = hasher.verify(password, encoded)
        if not ok:
            return Verification(ok=False)
        preferred = hasher is self.hashers[0]
        return Verification(ok=True, needs_rehash=not preferred or hasher.needs_rehash(encoded))

    def verify_dummy(self, password: str) -> None:
        """Spend the cost of one real verify, so unknown users take as long as known ones."""
        self.hashers[0].verify(normalize_password(password), self._dummy)

    def _hasher_for(self, encoded: str) -> Hasher | None:
        for hasher in self.hashers:
            if hasher.identify(encoded):
                return hasher
        return None
