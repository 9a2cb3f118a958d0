"""The session stores under test (``PORTCULLIS_SESSION_STORE``), on real servers: Redis (the
machine's) and a Memcached the run starts on a free 127.0.0.1 port and stops by PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask

from .services import service_unavailable

STORES = ("sql", "redis", "memcached")
REDIS_URL = "redis://127.0.0.1:6379/0"


def store_config(request: pytest.FixtureRequest, kind: str) -> dict[str, Any]:
    """The settings of an app on store ``kind``; keys under this test's own Redis prefix (and
    Memcached namespace), so runs and tests never share sessions."""
    if kind == "sql":
        return {}
    prefix: str = request.getfixturevalue("redis_prefix")
    url = REDIS_URL if kind == "redis" else request.getfixturevalue("memcached_url")
    return {"PORTCULLIS_SESSION_STORE": url, "PORTCULLIS_REDIS_PREFIX": prefix}


def same_store(app: Flask) -> dict[str, Any]:
    """The store settings of ``app``, for another app (a restart, a second process) on it."""
    keys = ("PORTCULLIS_SESSION_STORE", "PORTCULLIS_REDIS_PREFIX")
    return {key: app.config[key] for key in keys if key in app.config}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Memcached:
    """One memcached process of the test run's own; ``stop`` and ``start`` it again mid-test
    (same port: an outage and a recovery)."""

    def __init__(self) -> None:
        binary = shutil.which("memcached")
        if binary is None:
            reason = "no memcached binary (apt-get install memcached)"
            service_unavailable("Memcached", "127.0.0.1", reason)
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        command += ["-u", "root"] if os.geteuid() == 0 else []  # it refuses root otherwise
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        code = self.process.poll()
        self.stop()
        reason = f"exited with {code}" if code is not None else "did not listen within 10 s"
        service_unavailable("Memcached", f"127.0.0.1:{self.port}", reason)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@contextmanager
def memcached_server() -> Iterator[Memcached]:
    server = Memcached()
    server.start()
    try:
        yield server
    finally:
        server.stop()
