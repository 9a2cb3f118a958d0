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
    EMAIL_NOT_VERIFIED = "email_not_verified"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    THROTTLED = "throttled"
    DELIVERY_FAILED = "delivery_failed"
    UNAVAILABLE = "unavailable"
    INVALID_CODE = "invalid_code"
    PASSKEY_REJECTED = "passkey_rejected"
    PROVIDER_FAILED = "provider_failed"


class PortcullisError(Exception):
    """Base of every error the services raise on purpose."""

    code: ClassVar[ErrorCode] = ErrorCode.PORTCULLIS_ERROR


class ConfigurationError(PortcullisError):
    """A ``PORTCULLIS_*`` setting is invalid; raised once, at start-up."""

    code: ClassVar[ErrorCode] = ErrorCode.CONFIGURATION_ERROR


class InvalidCredentials(PortcullisError):
    """Unknown identity or wrong password: deliberately one error for both.

    ``user_id`` names the account for the audit log when there is one; it
    must never reach the person signing in.
    """

    code: ClassVar[ErrorCode] = ErrorCode.INVALID_CREDENTIALS
    reason: ClassVar[str] = "credentials"  # in the audit log's sign-in-failed rows

    def __init__(self, user_id: int | None = None) -> None:
        super().__init__("Incorrect username, email or password.")
        self.user_id = user_id


class AccountInactive(PortcullisError):
    """The password was right but the account is deactivated."""

    code: ClassVar[ErrorCode] = ErrorCode.ACCOUNT_INACTIVE
    reason: ClassVar[str] = "inactive"

    def __init__(self, user_id: int | None = None) -> None:
        super().__init__("This account is deactivated.")
        self.user_id = user_id


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
    """Usernames are public, so saying one is taken reveals nothing new.

    ``look_alike``: no account has this name, but one has a name that looks the
    same (an equal UTS #39 skeleton), which is taken too.
    """

    code: ClassVar[ErrorCode] = ErrorCode.USERNAME_TAKEN

    def __init__(self, *, look_alike: bool = False) -> None:
        if look_alike:
            message = "That username is too like one that is already taken."
        else:
            message = "That username is already taken."
        super().__init__("username", message)


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


class LastAdmin(Conflict):
    """The change would leave the site without an active administrator."""

    def __init__(self) -> None:
        super().__init__(
            "That is the site's last active administrator: give another account the admin "
            "role first."
        )


class EmailNotVerified(PortcullisError):
    """The password was right, but sign-in waits for the address to be confirmed."""

    code: ClassVar[ErrorCode] = ErrorCode.EMAIL_NOT_VERIFIED
    reason: ClassVar[str] = "unverified"

    def __init__(self, user_id: int) -> None:
        super().__init__("Confirm your email address before signing in.")
        self.user_id = user_id


class TokenInvalid(PortcullisError):
    """A link is forged, for another purpose, or used up (its account state has moved on)."""

    code: ClassVar[ErrorCode] = ErrorCode.TOKEN_INVALID


class TokenExpired(TokenInvalid):
    """A genuine link, but older than its lifetime."""

    code: ClassVar[ErrorCode] = ErrorCode.TOKEN_EXPIRED


class Throttled(PortcullisError):
    """Too many attempts; ``retry_after`` seconds until the next is allowed (HTTP 429)."""

    code: ClassVar[ErrorCode] = ErrorCode.THROTTLED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many attempts. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class DeliveryFailed(PortcullisError):
    """The mail server would not take a message; nothing that depended on it was changed."""

    code: ClassVar[ErrorCode] = ErrorCode.DELIVERY_FAILED


class Unavailable(PortcullisError):
    """A service the request needs (the database, Redis) cannot be reached: HTTP 503."""

    code: ClassVar[ErrorCode] = ErrorCode.UNAVAILABLE


class RefreshTokenReused(TokenInvalid):
    """A used refresh token came back: it was copied, and its whole session was ended."""

    def __init__(self, user_id: int | None) -> None:
        super().__init__("The refresh token was already used: the session is ended.")
        self.user_id = user_id


class InvalidCode(PortcullisError):
    """A second-factor code (TOTP or recovery) is wrong, expired or already used."""

    code: ClassVar[ErrorCode] = ErrorCode.INVALID_CODE


class PasskeyRejected(PortcullisError):
    """A WebAuthn response did not verify: wrong challenge, origin or signature, an unknown
    or removed passkey, or a sign counter that went backwards."""

    code: ClassVar[ErrorCode] = ErrorCode.PASSKEY_REJECTED


class ProviderFailed(PortcullisError):
    """A sign-in provider's answer cannot be used: refused by the person, forged, replayed,
    or the provider unreachable. The message is for the person; ``reason`` for the log."""

    code: ClassVar[ErrorCode] = ErrorCode.PROVIDER_FAILED

    def __init__(self, message: str, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.unreachable = unreachable  # the provider, not the answer, is at fault (502)
