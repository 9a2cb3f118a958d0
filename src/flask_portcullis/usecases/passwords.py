"""Change a password, and reset a forgotten one."""

from __future__ import annotations

from ..audit_events import Event
from ..models import UserMixin
from ..state import State
from ..tokens import Purpose
from .client import Client, record


def change_password(state: State, client: Client, user: UserMixin, current: str, new: str) -> None:
    """Replace the password after checking the current one; every other session ends.

    InvalidCredentials (a wrong current password) and PasswordRejected reach
    the caller. The owner is mailed a notice.
    """
    state.authenticator.require_password(user, current)
    state.accounts.set_password(user, new)
    record(state, Event.PASSWORD_CHANGED, user.id, client)
    state.notifier.password_changed(user, client.device, reset=False)


def offer_reset(state: State, client: Client, address: str) -> None:
    """Mail a reset link if the address has an active account: the same answer, as fast,
    for any address. Throttled per address and client."""
    state.notifier.limit(address, client.ip)
    user = state.accounts.get_by_email(address)
    if user is not None and user.active:
        state.notifier.password_reset(user, state.links.reset_token(user))


def reset_password(state: State, client: Client, token: str, new: str) -> UserMixin:
    """Set a new password through a mailed link: every session ends, nobody is signed in."""
    user = state.links.check(Purpose.RESET_PASSWORD, token)
    unlinked = state.accounts.reset_password(user, new)
    state.authenticator.lift_lock(user)  # the owner proved control of the address
    record(state, Event.PASSWORD_RESET, user.id, client)
    if unlinked:
        record(state, Event.PROVIDER_UNLINKED, user.id, client, count=unlinked, scope="reset")
    state.notifier.password_changed(user, client.device, reset=True)
    return user
