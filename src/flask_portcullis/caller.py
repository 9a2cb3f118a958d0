"""The caller of this HTTP request, as the pages and the API both read it.

The one place the HTTP adapters turn Flask's request into the
:class:`~flask_portcullis.usecases.client.Client` value the use cases take.
"""

from __future__ import annotations

from flask import request

from .state import get_state
from .usecases.client import Client


def client_ip() -> str:
    """The client's address (behind PORTCULLIS_TRUSTED_PROXIES, as ProxyFix found it)."""
    return request.remote_addr or ""


def this_client(via: str = "") -> Client:
    """This request's client: address, browser, the time now, and the adapter (``via``)."""
    return Client(
        ip=client_ip(), user_agent=request.user_agent.string, at=get_state().clock(), via=via
    )
