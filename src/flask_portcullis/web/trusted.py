"""The device cookie: this browser's trusted-device tokens, one per account it signed in to.

OWASP "Slow Down Online Guessing Attacks with Device Cookies". A browser
may sign in to several accounts, so the cookie holds up to
``MAX_TOKENS`` signed tokens, most recent first. Only the sign-in POSTs
read or write it: a signed-in page never touches trusted devices.
"""

from __future__ import annotations

from flask import Response, after_this_request, current_app, request

from ..caller import client_ip
from ..devices import BROWSER
from ..models import UserMixin
from ..state import get_state
from .keys import DEVICE_COOKIE

MAX_TOKENS = 5
SEPARATOR = "~"  # a cookie-safe character no token contains
MAX_AGE = 365 * 24 * 60 * 60  # a year, as long as an unused device stays trusted


def presented_tokens() -> list[str]:
    """The device tokens this browser sent (unchecked: the service verifies them)."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    return [token for token in value.split(SEPARATOR) if token][:MAX_TOKENS]


def current_device_id(user: UserMixin) -> str | None:
    """The stored id of this browser's trusted device for ``user``, if its cookie names one
    (signatures only, no database lookup)."""
    devices = get_state().devices
    for token in presented_tokens():
        record_id = devices.record_id(user.id, token)
        if record_id is not None:
            return record_id
    return None


def trust_this_browser(user: UserMixin, *, commit: bool = True) -> None:
    """After a sign-in: refresh this browser's device for ``user`` (or trust it anew) and
    put its token first in the cookie, beside the other accounts' (ASVS 3.4 attributes).
    Not audited on its own: the sign-in event says when and where. Without ``commit``,
    the device joins the caller's transaction (the sign-in's)."""
    state = get_state()
    presented = presented_tokens()
    trust = state.devices.trust(
        user,
        presented,
        kind=BROWSER,
        ip=client_ip(),
        user_agent=request.user_agent.string,
        commit=commit,
    )
    others = [t for t in presented if state.devices.user_id_of(t) not in (user.id, None)]
    value = SEPARATOR.join([trust.token, *others][:MAX_TOKENS])
    interface = current_app.session_interface

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(
            DEVICE_COOKIE,
            value,
            max_age=MAX_AGE,
            path="/",
            secure=interface.get_cookie_secure(current_app),
            httponly=True,
            samesite="Lax",
        )
        return response
