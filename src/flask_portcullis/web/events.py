"""Record security events with this request's IP and browser; tell owners of unusual sign-ins.

Shared by the HTML pages and the JSON API.
"""

from __future__ import annotations

from typing import Any

from flask import flash, request

from ..audit_events import Event
from ..exceptions import InvalidCode
from ..extension import get_state
from ..models import UserMixin
from .signin import client_ip, current_device, sign_in
from .trusted import trust_this_browser


def audit(event: Event, user_id: int | None = None, **detail: Any) -> None:
    get_state().audit.record(
        event, user_id=user_id, ip=client_ip(), user_agent=request.user_agent.string, **detail
    )


def notify_unusual_sign_in(user: UserMixin) -> None:
    """Mail the owner about a sign-in from a new device, or one after a run of failures."""
    state = get_state()
    device = current_device()
    failures = state.audit.failures_since_sign_in(user.id)
    new_device = state.settings.new_device_notice and state.audit.is_new_device(
        user.id, device.ip, request.user_agent.string
    )
    if new_device or failures >= state.settings.login_free_failures:
        state.notifier.sign_in_notice(user, device, failures=failures)


def complete_sign_in(user: UserMixin, *, remember: bool, **detail: str) -> None:
    """Sign ``user`` in on this browser after every factor was given, and trust the browser
    (its device cookie gives it its own sign-in budget from now on).

    The notice comes first: it compares with the earlier sign-ins in the
    audit log, which this one's row would otherwise join.
    """
    notify_unusual_sign_in(user)
    sign_in(user, remember=remember)
    audit(Event.SIGN_IN, user.id, remember=remember, **detail)
    trust_this_browser(user)
    flash(f"Signed in as {user.username}.", "success")


def verify_second_factor(user: UserMixin, code: str, **detail: str) -> str:
    """Check a TOTP or recovery code under the second-factor lock; return which it was, or
    audit the failure and raise InvalidCode. A used recovery code is audited and mailed."""
    state = get_state()
    try:
        method = state.accounts.second_factor(user, lambda: state.two_factor.verify(user, code))
    except InvalidCode:
        audit(Event.SIGN_IN_FAILED, user.id, reason="second-factor", **detail)
        raise
    if method == "recovery":
        audit(Event.RECOVERY_CODE_USED, user.id, **detail)
        left = state.two_factor.recovery_codes_left(user)
        state.notifier.factor_changed(
            user,
            current_device(),
            change=f"A recovery code was used to sign in. {left} unused codes are left.",
        )
    return method
