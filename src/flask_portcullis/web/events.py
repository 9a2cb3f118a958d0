"""Record security events with this request's IP and browser; tell owners of unusual sign-ins.

Shared by the HTML pages and the JSON API.
"""

from __future__ import annotations

from typing import Any

from flask import request

from ..audit_events import Event
from ..extension import get_state
from ..models import UserMixin
from .signin import client_ip, current_device


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
