"""Inviting someone, and their accepting: for the console, the CLI and the invitee's page."""

from __future__ import annotations

from collections.abc import Sequence

from ..audit_events import Event
from ..models import InvitationMixin, UserMixin
from ..state import State
from .client import Client, actor_name, record


def invite(
    state: State, client: Client, actor: int | None, email: str, roles: Sequence[str]
) -> InvitationMixin:
    """Invite ``email`` with ``roles`` and mail the link. EmailTaken tells the admin that an
    account has the address (only them: nothing is sent)."""
    invitation, token = state.invitations.create(email, roles, by=actor)
    _mail(state, client, actor, invitation, token)
    return invitation


def resend(state: State, client: Client, actor: int | None, invitation: InvitationMixin) -> None:
    """A new link (the old one dies) for a pending invitation, mailed again."""
    _mail(state, client, actor, invitation, state.invitations.renew(invitation))


def revoke(state: State, client: Client, actor: int | None, invitation: InvitationMixin) -> None:
    state.invitations.revoke(invitation)
    _record(state, client, actor, Event.INVITATION_REVOKED, invitation)


def _mail(
    state: State, client: Client, actor: int | None, invitation: InvitationMixin, token: str
) -> None:
    state.notifier.invitation(invitation.email, token, roles=invitation.role_names)
    _record(state, client, actor, Event.INVITATION_SENT, invitation)


def _record(
    state: State, client: Client, actor: int | None, event: Event, invitation: InvitationMixin
) -> None:
    record(state, event, None, client, actor=actor_name(actor), invitation=invitation.id)


def accept(state: State, client: Client, token: str, username: str, password: str) -> UserMixin:
    """Make the invited account; the caller signs it in."""
    user, invitation = state.invitations.accept(token, username, password)
    record(state, Event.ACCOUNT_CREATED, user.id, client, invitation=invitation.id)
    return user
