"""The pages' side of recording events and finishing a sign-in (the cookie, the flash)."""

from __future__ import annotations

from typing import Any

from flask import flash

from ..audit_events import Event
from ..caller import this_client
from ..models import UserMixin
from ..state import get_state
from ..usecases import signin
from ..usecases.client import record
from .signin import sign_in
from .trusted import trust_this_browser


def audit(event: Event, user_id: int | None = None, **detail: Any) -> None:
    """Record ``event`` as done by this browser."""
    record(get_state(), event, user_id, this_client(), **detail)


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
