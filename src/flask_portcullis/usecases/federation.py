"""Signing in through a provider, signing up through one, and linking and unlinking them.

The adapter speaks the protocol (Authlib) and hands over the ``Identity`` the
provider vouched for; these decide what it opens. Only a stored link signs
anyone in: an address that matches an account asks its owner to prove the
account first (``Arrival.owner``), and an address the provider does not
vouch for never matches at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..audit_events import Event
from ..exceptions import AccountInactive, Conflict, EmailNotVerified, EmailTaken, ProviderFailed
from ..federation import Identity
from ..identity import clean_email, identity_key
from ..models import UserMixin
from ..state import State
from .client import Client, record
from .signin import sign_in_failed

T = TypeVar("T")


@dataclass(frozen=True)
class Arrival:
    """What an identity opens: its linked ``user`` (sign them in, after their second
    factor), or an ``owner`` whose account has the identity's verified address (they must
    sign in to it before it is linked), or neither (a new person: offer a sign-up)."""

    identity: Identity
    user: UserMixin | None = None
    owner: UserMixin | None = None


def take_answer(state: State, client: Client, provider: str, exchange: Callable[[], T]) -> T:
    """Take a provider's answer on the callback: count the client's attempt first (Throttled
    before anything is fetched), then let ``exchange`` check the answer and fetch the
    identity (with what the adapter keeps beside it); a ProviderFailed is recorded as a
    failed sign-in and raised."""
    state.authenticator.guard.before_client_attempt(client.ip)
    try:
        return exchange()
    except ProviderFailed as exc:
        sign_in_failed(state, client, None, "provider", provider=provider, problem=exc.reason)
        raise


def arrive(state: State, client: Client, identity: Identity) -> Arrival:
    """What an identity opens, to sign in with it. A linked account that may not sign in
    (AccountInactive, EmailNotVerified) is recorded as a failed sign-in and raised."""
    user = state.federation.account_of(identity)
    if user is not None:
        try:
            state.authenticator.admit(user)
        except (AccountInactive, EmailNotVerified) as exc:
            sign_in_failed(state, client, exc.user_id, exc.reason, provider=identity.provider)
            raise
        state.federation.used(identity)
        return Arrival(identity, user=user)
    if identity.email_verified and identity.email:
        owner = state.accounts.get_by_email(identity.email)
        if owner is not None:
            return Arrival(identity, owner=owner)
    return Arrival(identity)


def sign_up(
    state: State, client: Client, identity: Identity, username: str, email: str
) -> UserMixin | None:
    """Make an account with no password for a new person, linked to their identity.

    The address counts as confirmed only when it is the one the provider
    vouched for; any other is mailed a confirmation link, as on the sign-up
    page. A taken address is answered as the sign-up page answers it: with
    verification required, its owner is told and None returned (the caller
    says "check your inbox", as for a new account: no enumeration); else
    EmailTaken. Conflict (the identity got linked meanwhile: two tabs) leaves
    no account behind. FieldError, Throttled and NotFound (sign-up closed)
    reach the caller.
    """
    if state.federation.account_of(identity) is not None:
        raise Conflict("That account at the provider is linked already: sign in with it.")
    email = clean_email(email)
    vouched = identity.email_verified and identity_key(email) == identity_key(identity.email)
    try:
        user = state.accounts.register(username, email, None, verified=vouched, client=client.ip)
    except EmailTaken:
        if state.settings.email_verification != "required":
            raise
        owner = state.accounts.get_by_email(email)
        if owner is not None:
            state.notifier.registration_attempt(owner, client.device, client.ip)
        return None
    try:
        state.federation.link(user, identity)
    except Conflict:
        state.accounts.delete(user)  # the race's loser: no account without its way in
        raise
    record(state, Event.ACCOUNT_CREATED, user.id, client, provider=identity.provider)
    record(state, Event.PROVIDER_LINKED, user.id, client, provider=identity.provider)
    if not vouched and state.settings.email_verification != "off":
        state.notifier.verification(user, state.links.verification_token(user), quiet=True)
    return user


def link(state: State, client: Client, user: UserMixin, identity: Identity, label: str) -> None:
    """Link an identity to an account whose owner is signed in (and proved it recently).

    Conflict when the identity belongs to another account, or the account
    has another identity at that provider. The owner is mailed a notice.
    """
    state.federation.link(user, identity)
    record(state, Event.PROVIDER_LINKED, user.id, client, provider=identity.provider)
    state.notifier.factor_changed(
        user, client.device, change=f"{label} was linked to your account: you can sign in with it."
    )


def unlink(state: State, client: Client, user: UserMixin, provider: str, label: str) -> None:
    """Remove a link; Conflict when it is the last way into the account. Mailed."""
    usable = {p.name for p in state.settings.oauth_providers}
    state.federation.unlink(user, provider, usable)
    record(state, Event.PROVIDER_UNLINKED, user.id, client, provider=provider)
    state.notifier.factor_changed(
        user, client.device, change=f"{label} was unlinked: it no longer signs you in."
    )
