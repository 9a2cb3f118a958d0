"""Inviting someone, and their accepting: for the console, the CLI and the invitee's page."""

from __future__ import annotations

from collections.abc import Sequence

from ..audit_events import Event
from ..models import InvitationMixin, UserMixin
from ..state import State
from .client import Client, record


def _named(actor: int | None) -> int | str:
    return actor if actor is not None else "cli"


def invite(
    state: State, client: Client, actor: int | None, email: str, roles: Sequence[str]
) -> InvitationMixin:
    """Invite ``email`` with ``roles`` and mail the link. EmailTaken tells the admin that an
    account has the address (only them: nothing is sent)."""
    invitation, token = state.invitations.create(email, roles, by=actor)
    state.notifier.invitation(invitation.email, token, roles=invitation.role_names)
    record(
        state,
        Event.INVITATION_SENT,
        None,
        client,
        actor=_named(actor),
        invitation=invitation.id,
    )
    return invitation


def resend(state: State, client: Client, actor: int | None, invitation: InvitationMixin) -> None:
    """A new link (the old one dies) for a pending invitation, mailed again."""
    token = state.invitations.renew(invitation)
    state.notifier.invitation(invitation.email, token, roles=invitation.role_names)
    record(
        state, Event.INVITATION_SENT, None, client, actor=_named(actor), invitation=invitation.id
    )


def revoke(state: State, client: Client, actor: int | None, invitation: InvitationMixin) -> None:
    state.invitations.revoke(invitation)
    record(
        state, Event.INVITATION_REVOKED, None, client, actor=_named(actor), invitation=invitation.id
    )


def accept(state: State, client: Client, token: str, username: str, password: str) -> UserMixin:
    """Make the invited account; the caller signs it in."""
    user, invitation = state.invitations.accept(token, username, password)
    record(state, Event.ACCOUNT_CREATED, user.id, client, invitation=invitation.id)
    return user
