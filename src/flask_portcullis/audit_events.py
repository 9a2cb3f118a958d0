"""The names of security events: stable strings, stored in the audit log and used by signals."""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    SIGN_IN = "sign-in"
    SIGN_IN_FAILED = "sign-in-failed"
    THROTTLED = "throttled"
    SIGN_OUT = "sign-out"
    SESSION_REVOKED = "session-revoked"
    PASSWORD_CHANGED = "password-changed"
    PASSWORD_RESET = "password-reset"
    EMAIL_CHANGE_REQUESTED = "email-change-requested"
    EMAIL_CHANGED = "email-changed"
    EMAIL_VERIFIED = "email-verified"
    ACCOUNT_CREATED = "account-created"
    ACCOUNT_ACTIVATED = "account-activated"
    ACCOUNT_DEACTIVATED = "account-deactivated"
    ACCOUNT_DELETED = "account-deleted"
    ROLE_GRANTED = "role-granted"
    ROLE_REMOVED = "role-removed"
    TWO_FACTOR_ENABLED = "two-factor-enabled"
    TWO_FACTOR_DISABLED = "two-factor-disabled"
    RECOVERY_CODES_REGENERATED = "recovery-codes-regenerated"
    RECOVERY_CODE_USED = "recovery-code-used"
    PASSKEY_ADDED = "passkey-added"
    PASSKEY_REMOVED = "passkey-removed"
    DEVICE_REVOKED = "device-revoked"
    PROVIDER_LINKED = "provider-linked"
    PROVIDER_UNLINKED = "provider-unlinked"
    ACCOUNT_UNLOCKED = "account-unlocked"
    PASSWORD_RESET_SENT = "password-reset-sent"
    VERIFICATION_SENT = "verification-sent"
    INVITATION_SENT = "invitation-sent"
    INVITATION_REVOKED = "invitation-revoked"


LABELS: dict[Event, str] = {
    Event.SIGN_IN: "Signed in",
    Event.SIGN_IN_FAILED: "Failed sign-in",
    Event.THROTTLED: "Too many attempts",
    Event.SIGN_OUT: "Signed out",
    Event.SESSION_REVOKED: "Device signed out",
    Event.PASSWORD_CHANGED: "Password changed",
    Event.PASSWORD_RESET: "Password reset by email",
    Event.EMAIL_CHANGE_REQUESTED: "Email change asked for",
    Event.EMAIL_CHANGED: "Email address changed",
    Event.EMAIL_VERIFIED: "Email address confirmed",
    Event.ACCOUNT_CREATED: "Account created",
    Event.ACCOUNT_ACTIVATED: "Account activated",
    Event.ACCOUNT_DEACTIVATED: "Account deactivated",
    Event.ACCOUNT_DELETED: "Account deleted",
    Event.ROLE_GRANTED: "Role granted",
    Event.ROLE_REMOVED: "Role removed",
    Event.TWO_FACTOR_ENABLED: "Two-factor sign-in turned on",
    Event.TWO_FACTOR_DISABLED: "Two-factor sign-in turned off",
    Event.RECOVERY_CODES_REGENERATED: "New recovery codes made",
    Event.RECOVERY_CODE_USED: "Recovery code used",
    Event.PASSKEY_ADDED: "Passkey added",
    Event.PASSKEY_REMOVED: "Passkey removed",
    Event.DEVICE_REVOKED: "Trusted device removed",
    Event.PROVIDER_LINKED: "Sign-in provider linked",
    Event.PROVIDER_UNLINKED: "Sign-in provider unlinked",
    Event.ACCOUNT_UNLOCKED: "Sign-in lock lifted",
    Event.PASSWORD_RESET_SENT: "Password reset link sent",
    Event.VERIFICATION_SENT: "Confirmation link sent",
    Event.INVITATION_SENT: "Invitation sent",
    Event.INVITATION_REVOKED: "Invitation withdrawn",
}
