"""Typed errors raised by the services; adapters map them to pages or problem+json."""

from __future__ import annotations

from collections.abc import Sequence


class PortcullisError(Exception):
    """Base of every error the services raise on purpose."""

    code = "portcullis_error"


class ConfigurationError(PortcullisError):
    """A ``PORTCULLIS_*`` setting is invalid; raised once, at start-up."""

    code = "configuration_error"


class InvalidCredentials(PortcullisError):
    """Unknown identity or wrong password: deliberately one error for both."""

    code = "invalid_credentials"


class AccountInactive(PortcullisError):
    """The password was right but the account is deactivated."""

    code = "account_inactive"


class PasswordRejected(PortcullisError):
    """A new password breaks the policy; ``reasons`` lists every broken rule."""

    code = "password_rejected"

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


class FieldError(PortcullisError):
    """One input field is unusable; ``field`` names it for the form or problem body."""

    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class UsernameTaken(FieldError):
    code = "username_taken"

    def __init__(self) -> None:
        super().__init__("username", "That username is already taken.")


class EmailTaken(FieldError):
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("email", "That email address cannot be used for a new account.")


class NotFound(PortcullisError):
    """A user, role or permission named by an operator does not exist."""

    code = "not_found"


class Conflict(PortcullisError):
    """The thing to create exists already."""

    code = "conflict"
