"""The pages' side of finishing a sign-in: the cookie, the trusted browser, the flash."""

from __future__ import annotations

from typing import Any

from flask import flash, session

from ..caller import this_client
from ..exceptions import Conflict
from ..federation import Identity
from ..models import UserMixin
from ..state import get_state
from ..usecases import federation, signin
from .keys import PENDING_IDENTITY
from .login_bridge import sign_in
from .trusted import trust_this_browser

# How long an identity waits for the owner of its address to sign in and link it.
PENDING_LIFETIME = 15 * 60


def complete_sign_in(
    user: UserMixin, *, remember: bool, greeting: str | None = None, **detail: str
) -> None:
    """Sign ``user`` in on this browser after every factor was given, and trust the browser
    (its device cookie gives it its own sign-in budget from now on). A provider identity
    waiting for this account's owner is linked now: they proved the account.
    ``greeting`` replaces the usual "Signed in as" message (a new account's welcome)."""
    pending = session.get(PENDING_IDENTITY)
    sign_in(user, remember=remember)
    signin.signed_in(get_state(), this_client(), user, remember=remember, **detail)
    trust_this_browser(user)
    flash(greeting or f"Signed in as {user.username}.", "success")
    link_pending(user, pending)


def hold_identity(identity: Identity, owner: UserMixin | None) -> None:
    """Keep a provider's identity in this browser until a page uses it: the sign-up of a
    new person, or the sign-in of ``owner`` (the account with its verified address)."""
    session[PENDING_IDENTITY] = {
        **identity.as_dict(),
        "owner": owner.id if owner is not None else None,
        "at": int(get_state().clock().timestamp()),
    }


def held_identity(owner: UserMixin | None = None) -> Identity | None:
    """The identity this browser holds (for ``owner``'s account, when given), while fresh."""
    return _fresh_identity(session.get(PENDING_IDENTITY), owner)


def _fresh_identity(pending: Any, owner: UserMixin | None) -> Identity | None:
    if not isinstance(pending, dict) or not isinstance(pending.get("at"), int):
        return None
    if get_state().clock().timestamp() - pending["at"] > PENDING_LIFETIME:
        return None
    if owner is not None and pending.get("owner") != owner.id:
        return None
    return Identity.from_dict(pending)


def link_pending(user: UserMixin, pending: object) -> None:
    """Link the identity held for ``user``'s account (``pending``, read before signing in
    emptied the session), now that its owner proved the account."""
    identity = _fresh_identity(pending, user)
    if identity is None:
        return
    state = get_state()
    label = next(
        (p.label for p in state.settings.oauth_providers if p.name == identity.provider), None
    )
    if label is None:  # the provider is no longer configured
        return
    try:
        federation.link(state, this_client(), user, identity, label)
    except Conflict as exc:
        flash(str(exc), "error")
    else:
        flash(f"Your {label} account is linked: you can sign in with it from now on.", "success")


def verify_second_factor(user: UserMixin, code: str, **detail: str) -> str:
    """The second step's code check (see usecases.signin.verify_second_factor)."""
    return signin.verify_second_factor(get_state(), this_client(), user, code, **detail)
