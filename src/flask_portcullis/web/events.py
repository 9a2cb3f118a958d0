"""Record a security event with this request's IP and browser."""

from __future__ import annotations

from typing import Any

from flask import request

from ..audit_events import Event
from ..extension import get_state
from .signin import client_ip


def audit(event: Event, user_id: int | None = None, **detail: Any) -> None:
    get_state().audit.record(
        event, user_id=user_id, ip=client_ip(), user_agent=request.user_agent.string, **detail
    )
