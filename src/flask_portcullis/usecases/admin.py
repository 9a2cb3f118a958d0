"""What a site administrator does to an account: each action once, for the console and the
CLI (``flask users ...``).

Every action takes the acting administrator (``actor``: their user id, or None for the
shell), writes an audit row naming them (its ``actor``: the id, or "cli"), and tells the
account's owner by mail where it concerns them. No action may leave the site without an
active administrator: removing the admin role, deactivating or deleting the last one
raises LastAdmin, for an administrator's own account too.
"""

from __future__ import annotations

from typing import Any

from ..audit_events import Event
from ..exceptions import LastAdmin
from ..models import UserMixin
from ..rbac import ADMIN_ROLE
from ..state import State
from .client import Client, actor_name, record
from .self_service import end_sessions as end_all_sessions


def _record(
    state: State, client: Client, actor: int | None, event: Event, user_id: int, **detail: Any
) -> None:
    record(state, event, user_id, client, actor=actor_name(actor), **detail)


def _keep_an_admin(state: State, user: UserMixin) -> None:
    """Refuse to take the last active administrator away (their role, flag or account)."""
    holds = any(role.name == ADMIN_ROLE for role in user.roles)
    if holds and user.active and not state.roles.other_active_holders(ADMIN_ROLE, user.id):
        raise LastAdmin()


def grant_role(state: State, client: Client, actor: int | None, user: UserMixin, role: str) -> bool:
    """Give ``user`` a role; False when they had it."""
    if not state.roles.add_to_user(user, role):
        return False
    _record(state, client, actor, Event.ROLE_GRANTED, user.id, role=role)
    state.notifier.changed_by_admin(user, change=f"you now have the role {role}.")
    return True


def remove_role(
    state: State, client: Client, actor: int | None, user: UserMixin, role: str
) -> bool:
    """Take a role from ``user``; False when they did not have it."""
    if role == ADMIN_ROLE:
        _keep_an_admin(state, user)
    if not state.roles.remove_from_user(user, role):
        return False
    _record(state, client, actor, Event.ROLE_REMOVED, user.id, role=role)
    state.notifier.changed_by_admin(user, change=f"you no longer have the role {role}.")
    return True


def set_active(
    state: State, client: Client, actor: int | None, user: UserMixin, active: bool
) -> None:
    """Activate, or deactivate: every session and API refresh token of the account ends in
    the same transaction, so its open browsers are signed out on their next request."""
    if active == user.active:
        return
    if not active:
        _keep_an_admin(state, user)
    state.accounts.set_active(user, active)
    event = Event.ACCOUNT_ACTIVATED if active else Event.ACCOUNT_DEACTIVATED
    _record(state, client, actor, event, user.id)
    change = "it is active again." if active else "it is deactivated; nobody can sign in to it."
    state.notifier.changed_by_admin(user, change=change)


def end_sessions(state: State, client: Client, actor: int | None, user: UserMixin) -> int:
    """Sign the account out everywhere and forget its trusted devices; count the sessions."""
    count = end_all_sessions(state, client, user.id, actor=actor_name(actor))
    state.notifier.changed_by_admin(user, change="every device of yours was signed out.")
    return count


def reset_second_factors(state: State, client: Client, actor: int | None, user: UserMixin) -> int:
    """Remove the authenticator app, recovery codes and passkeys (the owner enrols again; an
    administrator never sees a secret) and end every session; count the sessions."""
    state.two_factor.reset(user)
    count = state.sessions.end_all(user.id)
    _record(state, client, actor, Event.TWO_FACTOR_DISABLED, user.id, reset=True)
    state.notifier.changed_by_admin(
        user, change="your two-factor sign-in and passkeys were removed; set them up again."
    )
    return count


def unlock(state: State, client: Client, actor: int | None, user: UserMixin) -> None:
    """Lift the account's sign-in lock (its run of failures): the owner may try again now."""
    state.authenticator.lift_lock(user)
    _record(state, client, actor, Event.ACCOUNT_UNLOCKED, user.id)


def send_password_reset(state: State, client: Client, actor: int | None, user: UserMixin) -> None:
    """Mail the owner a password reset link (the administrator never learns it)."""
    state.notifier.password_reset(user, state.links.reset_token(user))
    _record(state, client, actor, Event.PASSWORD_RESET_SENT, user.id)


def resend_verification(state: State, client: Client, actor: int | None, user: UserMixin) -> bool:
    """Mail a new confirmation link; False when the address is confirmed already."""
    if user.email_verified:
        return False
    state.notifier.verification(user, state.links.verification_token(user))
    _record(state, client, actor, Event.VERIFICATION_SENT, user.id)
    return True


def delete(state: State, client: Client, actor: int | None, user: UserMixin) -> None:
    """Delete the account and everything of it; the owner is told first."""
    _keep_an_admin(state, user)
    state.notifier.changed_by_admin(user, change="it is deleted, with everything in it.")
    user_id = user.id
    state.accounts.delete(user)
    _record(state, client, actor, Event.ACCOUNT_DELETED, user_id)
