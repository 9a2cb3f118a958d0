"""Live demo servers for the tests that talk real HTTP: each its own process (gunicorn when
installed, else Flask's server) on a free port of 127.0.0.1, stopped by its PID; and a small
HTTP client (``Browser``) with one cookie jar."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import CSRF_INPUT, free_port

STARTUP_TIMEOUT = 30.0
PORT_TRIES = 3
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 15.0


@dataclass
class AppServer:
    """One demo server process listening on 127.0.0.1:``port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the server printed (for failure messages)."""
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop this server by its PID: SIGTERM, then SIGKILL if it does not go in time."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


def gunicorn_options() -> list[str]:
    """gunicorn 25.1+ opens a control socket at one path per user ($HOME/.gunicorn), which
    servers running side by side would take from each other: turn it off."""
    major, minor = (int(part) for part in re.findall(r"\d+", metadata.version("gunicorn"))[:2])
    return ["--no-control-socket"] if (major, minor) >= (25, 1) else []


def server_command(port: int) -> list[str]:
    """gunicorn, as deployed, when installed; Flask's threaded server otherwise."""
    if importlib.util.find_spec("gunicorn") is not None:
        command = [sys.executable, "-m", "gunicorn", "--workers=1", f"--bind=127.0.0.1:{port}"]
        return [*command, *gunicorn_options(), "flask_portcullis.demo:create_app()"]
    return [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "flask_portcullis.demo",
        "run",
        "--host=127.0.0.1",
        f"--port={port}",
        "--no-reload",
        "--no-debugger",
    ]


def server_environment(config: Mapping[str, Any], instance: Path) -> dict[str, str]:
    """This process's environment without any FLASK_* of its own, plus ``config`` as
    FLASK_* variables in JSON, as ``from_prefixed_env`` reads them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    for key, value in config.items():
        env[f"FLASK_{key}"] = json.dumps(value)
    env["PORTCULLIS_INSTANCE_PATH"] = str(instance)
    return env


def launch(
    name: str,
    env: dict[str, str],
    folder: Path,
    command: Callable[[int], list[str]] = server_command,
) -> AppServer:
    port = free_port()
    log = folder / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command(port), env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    return AppServer(name, port, process, log)


def start_servers(names: tuple[str, ...], env: dict[str, str], folder: Path) -> list[AppServer]:
    """Start one server per name (all at once), then wait until each answers /healthz."""
    servers: list[AppServer] = []
    try:
        servers = [launch(name, env, folder) for name in names]
        for index in range(len(servers)):
            for _ in range(PORT_TRIES):
                if wait_until_healthy(servers[index]):
                    break
                # Another process took the free port first: try a new one.
                servers[index] = launch(names[index], env, folder)
            else:
                pytest.fail(f"server {names[index]} found no free port in {PORT_TRIES} tries")
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def wait_until_healthy(server: AppServer) -> bool:
    """Wait (bounded) for /healthz to answer 200; False if the port was taken."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            if "address already in use" in server.output().lower():
                return False
            pytest.fail(f"server {server.name} exited at start-up:\n{server.output()}")
        try:
            if Browser().get(server, "/healthz").status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server {server.name} not healthy in {STARTUP_TIMEOUT} s:\n{server.output()}")


# -- an HTTP client ----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Browser:
    """One browser: one cookie jar for both servers, as cookies are not kept apart by port
    (RFC 6265 8.5), just as behind a load balancer. Redirects are not followed."""

    cookies: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Browser:
        """Another browser holding the same cookies (a second tab, or a thief's copy)."""
        return Browser(dict(self.cookies))

    def request(
        self,
        server: AppServer,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                self._store(header)
            received = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, received, text)
        finally:
            connection.close()

    def _store(self, header: str) -> None:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.strip().partition("=")
        if not value or "max-age=0" in attributes.lower().replace(" ", ""):
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def get(self, server: AppServer, path: str) -> Reply:
        return self.request(server, "GET", path)

    def post(self, server: AppServer, path: str, fields: Mapping[str, str]) -> Reply:
        return self.request(
            server,
            "POST",
            path,
            body=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def csrf_token(self, server: AppServer, path: str) -> str:
        page = self.get(server, path)
        match = CSRF_INPUT.search(page.body)
        assert match, f"no csrf_token on {path} of {server.name} ({page.status})"
        return match.group(1)

    def submit(
        self, server: AppServer, path: str, fields: Mapping[str, str], *, form_from: AppServer
    ) -> Reply:
        """Fetch the form at ``path`` from ``form_from`` and post it, with its token, to
        ``server``."""
        token = self.csrf_token(form_from, path)
        return self.post(server, path, {"csrf_token": token, **fields})
