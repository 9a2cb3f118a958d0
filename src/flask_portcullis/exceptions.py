"""Typed errors raised by the services; adapters map them to pages or problem+json."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (the API will return them; never rename one)."""

    PORTCULLIS_ERROR = "portcullis_error"
    CONFIGURATION_ERROR = "configuration_error"
    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_INACTIVE = "account_inactive"
    PASSWORD_REJECTED = "password_rejected"
    INVALID_FIELD = "invalid_field"
    USERNAME_TAKEN = "username_taken"
    EMAIL_TAKEN = "email_taken"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"


class PortcullisError(Exception):
    """Base of every error the services raise on purpose."""

    code: ClassVar[ErrorCode] = ErrorCode.PORTCULLIS_ERROR


class ConfigurationError(PortcullisError):
    """A ``PORTCULLIS_*`` setting is invalid; raised once, at start-up."""

    code: ClassVar[ErrorCode] = ErrorCode.CONFIGURATION_ERROR


class InvalidCredentials(PortcullisError):
    """Unknown identity or wrong password: deliberately one error for both."""

    code: ClassVar[ErrorCode] = ErrorCode.INVALID_CREDENTIALS


class AccountInactive(PortcullisError):
    """The password was right but the account is deactivated."""

    code: ClassVar[ErrorCode] = ErrorCode.ACCOUNT_INACTIVE


class PasswordRejected(PortcullisError):
    """A new password breaks the policy; ``reasons`` lists every broken rule."""

    code: ClassVar[ErrorCode] = ErrorCode.PASSWORD_REJECTED

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


class FieldError(PortcullisError):
    """One input field is unusable; ``field`` names it for the form or problem body."""

    code: ClassVar[ErrorCode] = ErrorCode.INVALID_FIELD

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class UsernameTaken(FieldError):
    """Usernames are public, so saying one is taken reveals nothing new."""

    code: ClassVar[ErrorCode] = ErrorCode.USERNAME_TAKEN

    def __init__(self) -> None:
        super().__init__("username", "That username is already taken.")


class EmailTaken(FieldError):
    """Worded so it does not say whose address it is."""

    code: ClassVar[ErrorCode] = ErrorCode.EMAIL_TAKEN

    def __init__(self) -> None:
        super().__init__("email", "That email address cannot be used for a new account.")


class NotFound(PortcullisError):
    """A user, role or permission named by an operator does not exist."""

    code: ClassVar[ErrorCode] = ErrorCode.NOT_FOUND


class Conflict(PortcullisError):
    """The thing to create exists already."""

    code: ClassVar[ErrorCode] = ErrorCode.CONFLICT
