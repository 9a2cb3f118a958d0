"""The account's own changes: its address, its sessions and devices, its deletion."""

from __future__ import annotations

from typing import Any

from ..accounts import has_password
from ..audit_events import Event
from ..identity import mask_email
from ..models import UserMixin
from ..state import State
from .client import Client, record


def prove_owner(state: State, user: UserMixin, password: str | None) -> None:
    """Check the password again; None stands for a recent re-authentication the adapter
    checked, for an account that has no password (made through a sign-in provider)."""
    if password is None and not has_password(user):
        return
    state.authenticator.require_password(user, password or "")


def request_email_change(
    state: State, client: Client, user: UserMixin, password: str | None, new_email: str
) -> str:
    """Mail a confirmation link to a new address (after the password); return the address.

    Limited first: otherwise "cannot be used" would answer unlimited questions.
    InvalidCredentials, FieldError, EmailTaken, Throttled and DeliveryFailed reach the
    caller; nothing changes until the link is followed.
    """
    state.notifier.limit(new_email, client.ip)
    prove_owner(state, user, password)
    email, token = state.links.email_change_token(user, new_email)
    state.notifier.email_change(user, email, token, client.device)
    record(state, Event.EMAIL_CHANGE_REQUESTED, user.id, client, new=mask_email(email))
    return email


def confirm_email_change(state: State, client: Client, token: str) -> UserMixin:
    """Switch to the address a change link was sent to (TokenInvalid, EmailTaken otherwise)."""
    user = state.links.confirm_email_change(token)
    record(state, Event.EMAIL_CHANGED, user.id, client)
    return user


def delete_account(state: State, client: Client, user: UserMixin, password: str | None) -> None:
    """Delete the account after re-checking the password (InvalidCredentials otherwise;
    see prove_owner for None)."""
    user_id = user.id
    prove_owner(state, user, password)
    state.accounts.delete(user)
    record(state, Event.ACCOUNT_DELETED, user_id, client)


def end_sessions(
    state: State,
    client: Client,
    user_id: int,
    *,
    keep_token: str | None = None,
    keep_device: str | None = None,
    **detail: Any,
) -> int:
    """End every session of the account and forget its trusted devices, but the caller's
    own ``keep_*``; return how many sessions ended."""
    scope = "others" if keep_token else "all"
    count, forgotten = state.accounts.end_everywhere(
        user_id, keep_token=keep_token, keep_device=keep_device
    )
    record(state, Event.SESSION_REVOKED, user_id, client, count=count, scope=scope, **detail)
    if forgotten:
        record(state, Event.DEVICE_REVOKED, user_id, client, count=forgotten, scope=scope, **detail)
    return count


def end_session(state: State, client: Client, user_id: int, session_id: str) -> bool:
    """End one session of the account; False when there was none such."""
    if not state.sessions.end_one(user_id, session_id[:64]):
        return False
    record(state, Event.SESSION_REVOKED, user_id, client, count=1, scope="one")
    return True


def forget_device(state: State, client: Client, user_id: int, device_id: str) -> bool:
    """Stop trusting one device: its next sign-in counts like any unknown client's."""
    if not state.devices.revoke_one(user_id, device_id[:64]):
        return False
    record(state, Event.DEVICE_REVOKED, user_id, client, count=1, scope="one")
    return True
