"""Second factors: an authenticator app, passkeys and recovery codes, added and removed.

Each change is recorded and the owner mailed, whichever factor it is: a
factor the owner did not add is the first sign of a taken account.
"""

from __future__ import annotations

from ..audit_events import Event
from ..models import UserMixin
from ..passkeys import RelyingParty
from ..state import State
from .client import Client, record


def _changed(state: State, client: Client, user: UserMixin, change: str) -> None:
    state.notifier.factor_changed(user, client.device, change=change)


def enable_app(state: State, client: Client, user: UserMixin, secret: str, code: str) -> list[str]:
    """Turn the authenticator app on once its first code checks out; return the recovery
    codes to show once (InvalidCode otherwise)."""
    codes = state.two_factor.enable(user, secret, code)
    record(state, Event.TWO_FACTOR_ENABLED, user.id, client)
    _changed(state, client, user, "Two-factor sign-in was turned on for your account.")
    return codes


def disable_app(state: State, client: Client, user: UserMixin) -> str:
    """Remove the authenticator app (the caller checked the password); return what changed,
    in the owner's words (passkeys may remain the second factor)."""
    state.two_factor.disable(user)
    record(state, Event.TWO_FACTOR_DISABLED, user.id, client)
    change = (
        "The authenticator app was removed; your passkeys remain your second factor."
        if state.two_factor.is_enabled(user)
        else "Two-factor sign-in was turned off for your account."
    )
    _changed(state, client, user, change)
    return change


def add_passkey(
    state: State,
    client: Client,
    user: UserMixin,
    relying_party: RelyingParty,
    answer: str,
    challenge: bytes,
    name: str,
) -> tuple[str, list[str]]:
    """Register the browser's passkey answer (PasskeyRejected otherwise); return its name and
    the recovery codes to show once if it is the account's first second factor."""
    passkey = state.passkeys.register(user, relying_party, answer, challenge, name)
    record(state, Event.PASSKEY_ADDED, user.id, client, name=passkey.name)
    _changed(state, client, user, f"A passkey named “{passkey.name}” was added.")
    return passkey.name, state.two_factor.ensure_recovery_codes(user)


def remove_passkey(state: State, client: Client, user: UserMixin, passkey_id: int) -> str | None:
    """Remove one of the user's passkeys; return its name, or None when there was none."""
    passkey = state.passkeys.remove(user, passkey_id)
    if passkey is None:
        return None
    record(state, Event.PASSKEY_REMOVED, user.id, client, name=passkey.name)
    _changed(state, client, user, f"The passkey named “{passkey.name}” was removed.")
    return passkey.name


def new_recovery_codes(state: State, client: Client, user: UserMixin) -> list[str]:
    """Void the old recovery codes and return a new set, to show once."""
    codes = state.two_factor.regenerate_recovery_codes(user)
    record(state, Event.RECOVERY_CODES_REGENERATED, user.id, client)
    _changed(
        state,
        client,
        user,
        "New recovery codes were made for your account; the old ones are void.",
    )
    return codes
