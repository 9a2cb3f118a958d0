"""The second sign-in step, shared by the code page and the passkey button: hold a sign-in
whose password was right until a second factor is given, then finish it."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import flash, redirect, session, url_for
from flask.typing import ResponseReturnValue

from ..exceptions import TokenInvalid
from ..models import UserMixin
from ..state import get_state
from .events import complete_sign_in
from .keys import PENDING_IDENTITY, SECOND_STEP
from .redirects import safe_next


def start_second_step(
    user: UserMixin, *, remember: bool, next_url: str | None, **detail: str
) -> ResponseReturnValue:
    """Hold the sign-in until the second factor: nothing is signed in yet.

    The pending state is the same signed challenge the API hands out: it
    expires after five minutes and dies with a password change. ``detail``
    goes on the sign-in's audit row (which provider, say). A provider
    identity waiting for this account is kept for when the sign-in completes.
    """
    identity = session.get(PENDING_IDENTITY)
    session.clear()
    if identity is not None:
        session[PENDING_IDENTITY] = identity
    challenge = get_state().authenticator.make_challenge(user)
    session[SECOND_STEP] = {
        "challenge": challenge,
        "remember": remember,
        "next": next_url,
        "detail": detail,
    }
    return redirect(url_for("portcullis.login_two_factor"))


SecondStepView = Callable[[UserMixin, dict[str, Any]], ResponseReturnValue]


def second_step(view: SecondStepView) -> Callable[[], ResponseReturnValue]:
    """A view of the second sign-in step: called with the user whose password was right and
    the pending state, or, with no live challenge, back to the sign-in page."""

    @wraps(view)
    def wrapped() -> ResponseReturnValue:
        pending = session.get(SECOND_STEP)
        if isinstance(pending, dict) and isinstance(pending.get("challenge"), str):
            try:
                user = get_state().authenticator.check_challenge(pending["challenge"])
            except TokenInvalid:
                session.pop(SECOND_STEP, None)
            else:
                return view(user, pending)
        flash("Please sign in again.", "info")
        return redirect(url_for("portcullis.login"))

    return wrapped


def finish_second_step(
    user: UserMixin, pending: dict[str, Any], *, factor: str
) -> ResponseReturnValue:
    get_state().authenticator.admit(user)  # the pending challenge is used up
    detail = pending.get("detail")
    detail = {str(k): str(v) for k, v in detail.items()} if isinstance(detail, dict) else {}
    remember = bool(pending.get("remember"))
    first = complete_sign_in(user, remember=remember, factor=factor, **detail)
    target = first or safe_next(pending.get("next"))
    return redirect(target or url_for(get_state().settings.post_login_view))
