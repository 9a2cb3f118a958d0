"""Reachability checks for the real servers some tests need (PostgreSQL, MariaDB, Redis...).

A test or fixture calls :func:`require_service` before it touches a server.
When the server answers, the call returns. When it does not, the test is
skipped with a message that names the server and the error, or, when the
environment variable ``PORTCULLIS_REQUIRE_SERVICES=1`` is set (CI), it fails
instead, so a missing server can never pass silently as a skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import NoReturn

import pytest

REQUIRE_SERVICES = "PORTCULLIS_REQUIRE_SERVICES"
CONNECT_TIMEOUT = 3.0


def services_required() -> bool:
    """Tell whether an unreachable service must fail the run rather than skip."""
    return os.environ.get(REQUIRE_SERVICES, "").strip() == "1"


def service_unavailable(name: str, address: str, error: object) -> NoReturn:
    """Skip (or, under ``PORTCULLIS_REQUIRE_SERVICES=1``, fail) because ``name`` is down."""
    if services_required():
        pytest.fail(
            f"{name} at {address} unreachable: {error}; "
            f"{REQUIRE_SERVICES}=1 is set, so this is a failure, not a skip",
            pytrace=False,
        )
    pytest.skip(
        f"{name} at {address} unreachable: {error}; set {REQUIRE_SERVICES}=1 to make this a failure"
    )


def require_service(
    name: str,
    host: str,
    port: int,
    probe: Callable[[], object] | None = None,
    *,
    timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Return if ``name`` listens on ``host:port`` and ``probe`` succeeds; else skip or fail.

    The TCP connect gives a quick, plain answer when nothing listens; ``probe``
    (for example "connect with the real driver and run SELECT 1", or a Redis
    PING) then proves the server speaks its protocol and accepts our login.
    Any exception the probe raises counts as "unreachable", with its message.
    """
    address = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        service_unavailable(name, address, exc)
    if probe is None:
        return
    try:
        probe()
    except Exception as exc:
        service_unavailable(name, address, f"{type(exc).__name__}: {exc}")
