"""Normalise and validate usernames and email addresses.

Each identity has a display form (what the user typed, NFKC-normalised) and a
key (casefolded) that carries the unique index, so "Ada", "ADA" and the full-width
forms of the same letters are one account and sign in alike.
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from .exceptions import FieldError

USERNAME_MIN = 3
USERNAME_MAX = 32
EMAIL_MAX = 254  # RFC 5321 path limit
USERNAME_KEY_MAX = 64  # the stored, casefolded key (see models.UserMixin)
# Letters, digits and ._- in any script; no "@" so a username never looks like an email.
_USERNAME = re.compile(r"^\w[\w.\-]*\Z")


def normalize_text(value: str) -> str:
    """NFKC and trim: the form every identity is stored and compared in."""
    return unicodedata.normalize("NFKC", value).strip()


def identity_key(value: str) -> str:
    """Return the case-insensitive lookup key for a username or an email address."""
    return normalize_text(value).casefold()


def has_control_characters(value: str) -> bool:
    """Tell whether ``value`` holds NUL or another control character (never in an identity).

    Such input must not reach the database: PostgreSQL refuses NUL in text.
    """
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def clean_username(value: str) -> str:
    """Return the display form of a new username, or raise FieldError saying what is wrong."""
    username = normalize_text(value)
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX:
        raise FieldError(
            "username", f"Use {USERNAME_MIN} to {USERNAME_MAX} letters, digits, '.', '_' or '-'."
        )
    if len(identity_key(username)) > USERNAME_KEY_MAX:
        # Casefolding can lengthen text ("ΐ" becomes three characters); the key must fit.
        raise FieldError("username", "That username is too long.")
    if not _USERNAME.match(username):
        raise FieldError(
            "username",
            "Use only letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return username


def clean_email(value: str) -> str:
    """Return the normalised form of an email address, or raise FieldError.

    No DNS lookups: deliverability is proven by the verification mail instead.
    """
    text = normalize_text(value)
    if len(text) > EMAIL_MAX:
        raise FieldError("email", "That email address is too long.")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError("email", f"Enter a valid email address ({exc}).") from exc
    if len(identity_key(result.normalized)) > EMAIL_MAX:
        raise FieldError("email", "That email address is too long.")
    return result.normalized


def mask_email(address: str) -> str:
    """Show enough of an address to recognise it, not enough to harvest it: a***@example.com."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"
