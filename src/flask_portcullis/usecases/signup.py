"""Sign up, and confirm the address: for the pages and the API alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..audit_events import Event
from ..exceptions import DeliveryFailed, EmailTaken
from ..identity import clean_email
from ..models import UserMixin
from ..state import State
from .client import Client, record


@dataclass(frozen=True)
class SignUp:
    """What became of a sign-up.

    ``user`` is the new account, or None when the address was taken and, with
    verification required, the owner was mailed instead (the caller answers
    exactly as for a new account: no enumeration). ``address`` is the cleaned
    address either way; ``mail_failed`` tells that the confirmation link could
    not be sent (the caller may say so: the account exists).
    """

    user: UserMixin | None
    address: str
    mail_failed: bool = False


def sign_up(
    state: State,
    client: Client,
    username: str,
    email: str,
    password: str,
    extra: Mapping[str, Any] | None = None,
) -> SignUp:
    """Create an account and mail its confirmation link (unless verification is off).

    A taken address raises EmailTaken unless verification is required; then
    the owner is told instead and the answer looks like a new account's.
    FieldError, PasswordRejected, Throttled and NotFound (sign-up closed)
    reach the caller.
    """
    mode = state.settings.email_verification
    try:
        user = state.accounts.register(username, email, password, client=client.ip, extra=extra)
    except EmailTaken:
        if mode != "required":
            raise
        address = clean_email(email)  # shown and kept exactly as a new sign-up's would be
        owner = state.accounts.get_by_email(address)
        if owner is not None:
            state.notifier.registration_attempt(owner, client.device, client.ip)
        return SignUp(None, address)
    record(state, Event.ACCOUNT_CREATED, user.id, client)
    failed = False
    if mode != "off":
        try:
            state.notifier.verification(user, state.links.verification_token(user))
        except DeliveryFailed:
            failed = True
    return SignUp(user, user.email, mail_failed=failed)


def verify_email(state: State, client: Client, token: str) -> UserMixin:
    """Confirm the address a link was sent to (TokenInvalid/TokenExpired otherwise)."""
    user = state.links.verify_email(token)
    record(state, Event.EMAIL_VERIFIED, user.id, client)
    return user


def send_verification(state: State, client: Client, user: UserMixin) -> bool:
    """Mail a signed-in user a new confirmation link; False when the address is confirmed
    already. Throttled per address and client; DeliveryFailed reaches the caller."""
    if user.email_verified:
        return False
    state.notifier.limit(user.email, client.ip)
    state.notifier.verification(user, state.links.verification_token(user))
    return True


def offer_verification(state: State, client: Client, address: str) -> None:
    """Mail a new link if ``address`` has an account awaiting confirmation; the same for any
    address (nothing tells whether it has one)."""
    state.notifier.limit(address, client.ip)
    user = state.accounts.get_by_email(address)
    if user is not None and user.active and not user.email_verified:
        # A failed send is logged, not raised: telling of it would tell the address is known.
        state.notifier.verification(user, state.links.verification_token(user), quiet=True)
