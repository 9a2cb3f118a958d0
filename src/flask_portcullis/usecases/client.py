"""Who asks: the request-bound facts a use case needs, as a value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..audit_events import Event
from ..notify import Device
from ..state import State

# Notices show this much of the browser string; the audit log keeps what sessions keep.
NOTICE_AGENT_MAX = 200


@dataclass(frozen=True)
class Client:
    """The client of one request: address, browser, time, and the adapter it came through
    (``via``: "api" for the JSON API, "" for the pages, "cli" for the shell)."""

    ip: str
    user_agent: str
    at: datetime
    via: str = ""

    @property
    def device(self) -> Device:
        """This client as security notices describe it."""
        return Device(ip=self.ip, user_agent=self.user_agent[:NOTICE_AGENT_MAX], at=self.at)


def actor_name(actor: int | None) -> int | str:
    """Who acted, as an audit row names them: an administrator's user id, or the shell."""
    return actor if actor is not None else "cli"


def record(state: State, event: Event, user_id: int | None, client: Client, **detail: Any) -> None:
    """Audit ``event`` as done by ``client`` (its row, and so its signal)."""
    if client.via:
        detail.setdefault("via", client.via)
    state.audit.record(event, user_id=user_id, ip=client.ip, user_agent=client.user_agent, **detail)


def stage_record(
    state: State, event: Event, user_id: int | None, client: Client, **detail: Any
) -> Callable[[], None]:
    """Like record, in the caller's transaction; returns what sends the signals after it."""
    if client.via:
        detail.setdefault("via", client.via)
    return state.audit.stage(
        event, user_id=user_id, ip=client.ip, user_agent=client.user_agent, **detail
    )
