"""Decide whether a new password is acceptable, per NIST SP 800-63B 5.1.1.2.

Length, not composition: every rule runs and every failure is reported at
once, the way django.contrib.auth.password_validation does it.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Protocol

from .exceptions import PasswordRejected
from .identity import has_control_characters
from .passwords import normalize_password
from .settings import Settings


class PasswordValidator(Protocol):
    """One rule. Return a message for the user when the password breaks it, else None."""

    def __call__(self, password: str, *, username: str, email: str) -> str | None: ...


@cache
def common_passwords() -> frozenset[str]:
    """Load the shipped list of common passwords (see scripts/make_common_passwords.py)."""
    data = files("flask_portcullis").joinpath("data/common-passwords.txt.gz").read_bytes()
    lines = gzip.decompress(data).decode().splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class LengthRule:
    minimum: int
    maximum: int

    def __call__(self, password: str, *, username: str, email: str) -> str | None:
        # Count characters after NFKC, as NIST asks; never truncate silently.
        length = len(normalize_password(password))
        if length < self.minimum:
            return f"Use at least {self.minimum} characters."
        if length > self.maximum:
            return f"Use at most {self.maximum} characters."
        return None


def no_control_characters(password: str, *, username: str, email: str) -> str | None:
    """Refuse NUL and other control characters: invisible, and trouble for other systems."""
    if has_control_characters(password):
        return "Do not use control characters (such as NUL or tab)."
    return None


def not_common(password: str, *, username: str, email: str) -> str | None:
    """Refuse passwords that appear in breach corpora (NIST 800-63B 5.1.1.2)."""
    if normalize_password(password).casefold() in common_passwords():
        return "This password is too common; choose one that is harder to guess."
    return None


def not_the_identity(password: str, *, username: str, email: str) -> str | None:
    """Refuse a password equal to the account's own username or email address."""
    key = normalize_password(password).casefold()
    if key and key in {username.casefold(), email.casefold(), email.casefold().split("@")[0]}:
        return "Do not use your username or email address as the password."
    return None


@dataclass(frozen=True)
class PasswordPolicy:
    """Run every validator and raise PasswordRejected listing all that failed."""

    validators: Sequence[PasswordValidator]

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        length = LengthRule(settings.password_min_length, settings.password_max_length)
        return cls([length, no_control_characters, not_common, not_the_identity])

    def check(self, password: str, *, username: str = "", email: str = "") -> list[str]:
        """Return the reasons ``password`` is refused; an empty list means accepted."""
        reasons = []
        for validator in self.validators:
            reason = validator(password, username=username, email=email)
            if reason:
                reasons.append(reason)
        return reasons

    def require(self, password: str, *, username: str = "", email: str = "") -> None:
        """Raise PasswordRejected unless ``password`` passes every rule."""
        reasons = self.check(password, username=username, email=email)
        if reasons:
            raise PasswordRejected(reasons)
