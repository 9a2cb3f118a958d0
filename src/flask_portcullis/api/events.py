"""The API's client and its audit rows (each marked ``via="api"``)."""

from __future__ import annotations

from typing import Any

from ..audit_events import Event
from ..caller import this_client
from ..state import get_state
from ..usecases.client import Client, record


def client() -> Client:
    """This request's client, as the use cases take it."""
    return this_client(via="api")


def audit(event: Event, user_id: int | None = None, **detail: Any) -> None:
    """Record ``event`` as done by this API client."""
    record(get_state(), event, user_id, client(), **detail)
