"""The pages' side of finishing a sign-in: the cookie, the trusted browser, the flash."""

from __future__ import annotations

from flask import flash

from ..caller import this_client
from ..models import UserMixin
from ..state import get_state
from ..usecases import signin
from .login_bridge import sign_in
from .trusted import trust_this_browser


def complete_sign_in(user: UserMixin, *, remember: bool, **detail: str) -> None:
    """Sign ``user`` in on this browser after every factor was given, and trust the browser
    (its device cookie gives it its own sign-in budget from now on)."""
    sign_in(user, remember=remember)
    signin.signed_in(get_state(), this_client(), user, remember=remember, **detail)
    trust_this_browser(user)
    flash(f"Signed in as {user.username}.", "success")


def verify_second_factor(user: UserMixin, code: str, **detail: str) -> str:
    """The second step's code check (see usecases.signin.verify_second_factor)."""
    return signin.verify_second_factor(get_state(), this_client(), user, code, **detail)
