"""The pages' side of finishing a sign-in: the cookie, the trusted browser, the flash."""

from __future__ import annotations

from typing import Any

from flask import flash, session, url_for

from ..caller import this_client
from ..federation import Identity
from ..models import UserMixin
from ..state import get_state
from ..usecases import signin
from .keys import PENDING_IDENTITY
from .login_bridge import sign_in
from .trusted import trust_this_browser

# How long an identity waits for the owner of its address to sign in and link it.
PENDING_LIFETIME = 15 * 60


def complete_sign_in(
    user: UserMixin, *, remember: bool, greeting: str | None = None, **detail: str
) -> str | None:
    """Sign ``user`` in on this browser after every factor was given, and trust the browser
    (its device cookie gives it its own sign-in budget from now on). ``greeting`` replaces
    the usual "Signed in as" message (a new account's welcome).

    Returns where to go first, if anywhere: when a provider identity waits for this
    account (its address matched), the owner, now proven, is asked whether to link it.
    Linking without asking would let whoever left it waiting in this browser in.
    """
    pending = session.get(PENDING_IDENTITY)
    # One transaction: the trusted device and the audit row commit with the session, so a
    # sign-in that succeeds has all three stored and one that fails none of them.
    trust_this_browser(user, commit=False)
    announce = signin.stage_signed_in(get_state(), this_client(), user, remember=remember, **detail)
    sign_in(user, remember=remember)
    announce()
    flash(greeting or f"Signed in as {user.username}.", "success")
    identity = _fresh_identity(pending, user)
    if identity is None:
        return None
    hold_identity(identity, user)  # again: signing in emptied the session
    return url_for("portcullis.provider_confirm", provider=identity.provider)


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


def verify_second_factor(user: UserMixin, code: str, **detail: str) -> str:
    """The second step's code check (see usecases.signin.verify_second_factor)."""
    return signin.verify_second_factor(get_state(), this_client(), user, code, **detail)
