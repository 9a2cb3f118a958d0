"""The API's client, as the use cases take it (its audit rows are marked ``via="api"``)."""

from __future__ import annotations

from ..caller import this_client
from ..usecases.client import Client


def client() -> Client:
    """This request's client, as the use cases take it."""
    return this_client(via="api")
