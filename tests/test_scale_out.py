"""Scale-out: two app servers on one PostgreSQL and one Redis behave as one site.

Two real HTTP servers, each its own process (as on two machines behind a load
balancer), run the demo with one ``SECRET_KEY`` on one database made for this
run and one Redis key prefix of this run. Clients talk HTTP to both, so
nothing here can pass by sharing memory with the test:

- a sign-in on one server is valid on the other (sessions are database rows);
- a sign-out or an ended device on one is anonymous on the other at once;
- sign-in limits count attempts made on both (Redis);
- API tokens from one verify on the other, and refresh-token rotation and
  reuse detection span both (keys derived from ``SECRET_KEY``, tokens in
  the database).

The servers are gunicorn (one sync worker each) when it is installed, else
Flask's own server. Both are stopped by PID, and the database and the Redis
keys go afterwards, whatever happened.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_portcullis import get_state

from .conftest import (
    CSRF_INPUT,
    FAST_HASH,
    PASSWORD,
    REDIS_URL,
    free_port,
    make_app,
    make_user,
    redis_key_prefix,
)
from .services import require_service

pytestmark = pytest.mark.services

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
SECRET_KEY = "scale-out-secret-" + "s" * 32
# Small limits, so a few attempts spread over both servers reach them. The per-client
# limit stays out of the way: every request here comes from 127.0.0.1.
ATTEMPTS_PER_ACCOUNT = 4
FREE_FAILURES = 2
LIMITS = {
    "PORTCULLIS_LOGIN_LIMIT_PER_CLIENT": "1000/minute",
    "PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT": f"{ATTEMPTS_PER_ACCOUNT} per 15 minutes",
    "PORTCULLIS_LOGIN_FREE_FAILURES": FREE_FAILURES,
}
USERS = ("ada", "bob", "cleo", "dora", "eve", "fay", "gus")
STARTUP_TIMEOUT = 30.0
PORT_TRIES = 3
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 15.0


# -- servers ------------------------------------------------------------------------


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


def api(
    server: AppServer,
    method: str,
    path: str,
    body: Mapping[str, str] | None = None,
    *,
    token: str | None = None,
) -> Reply:
    """Call the JSON API (no cookies)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload = None if body is None else json.dumps(body).encode()
    return Browser().request(server, method, "/api/v1" + path, body=payload, headers=headers)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped afterwards."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def probe() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    name = "portcullis_scale_" + secrets.token_hex(4)
    try:
        require_service("PostgreSQL", PG_HOST, PG_PORT, probe)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            with admin.connect() as conn:
                # FORCE ends connections a server stopped by SIGKILL may have left.
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class Cluster:
    one: AppServer
    two: AppServer


def migrate_and_add_users(app: Flask) -> None:
    """Apply the shipped migrations (done by make_app) and add USERS, then let go of the
    database so only the servers hold connections."""
    try:
        for name in USERS:
            make_user(app, name, f"{name}@example.com")
    finally:
        with app.app_context():
            get_state(app).db.engine.dispose()


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two demo servers on this run's database and Redis prefix, with one SECRET_KEY."""
    folder = tmp_path_factory.mktemp("scale-out")
    with redis_key_prefix() as prefix:
        config: dict[str, Any] = {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": postgres_url,
            "PORTCULLIS_REDIS_URL": REDIS_URL,
            "PORTCULLIS_REDIS_PREFIX": prefix,
            # Plain HTTP on loopback: the cookie must not be Secure-only.
            "PORTCULLIS_SECURE_COOKIES": False,
            "PORTCULLIS_NEW_DEVICE_NOTICE": False,
            **FAST_HASH,
            **LIMITS,
        }
        migrate_and_add_users(make_app(folder / "setup", None, **config))
        env = server_environment(config, folder / "instance")
        one, two = start_servers(("one", "two"), env, folder)
        try:
            yield Cluster(one, two)
        finally:
            one.stop()
            two.stop()


# -- helpers -------------------------------------------------------------------------------


def sign_in(browser: Browser, server: AppServer, username: str, password: str = PASSWORD) -> Reply:
    return browser.submit(
        server, "/login", {"identity": username, "password": password}, form_from=server
    )


def signed_in(server: AppServer, username: str) -> Browser:
    """A new browser signed in as ``username`` on ``server``."""
    browser = Browser()
    reply = sign_in(browser, server, username)
    assert reply.status == 302, reply.body[:500]
    assert not reply.location.startswith("/login"), reply.location
    return browser


def assert_account_page(reply: Reply, username: str) -> None:
    assert reply.status == 200, (reply.status, reply.location)
    assert re.search(rf"\b{username}\b", reply.body), reply.body[:500]


def assert_sent_to_login(reply: Reply) -> None:
    assert reply.status == 302, (reply.status, reply.body[:300])
    assert reply.location.startswith("/login"), reply.location


def assert_throttled(reply: Reply) -> int:
    """Check for a 429 and return its Retry-After in seconds."""
    assert reply.status == 429, (reply.status, reply.body[:300])
    retry_after = int(reply.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


# -- sessions ------------------------------------------------------------------------------


def test_a_sign_in_on_one_server_is_valid_on_the_other(cluster: Cluster) -> None:
    browser = signed_in(cluster.one, "ada")
    assert_account_page(browser.get(cluster.two, "/account"), "ada")
    assert_account_page(browser.get(cluster.one, "/account"), "ada")


def test_a_form_from_one_server_is_accepted_by_the_other(cluster: Cluster) -> None:
    """No sticky sessions needed: the CSRF token is signed with the shared SECRET_KEY."""
    browser = Browser()
    reply = browser.submit(
        cluster.two, "/login", {"identity": "gus", "password": PASSWORD}, form_from=cluster.one
    )
    assert reply.status == 302, reply.body[:500]
    assert_account_page(browser.get(cluster.one, "/account"), "gus")


def test_signing_out_on_one_server_ends_the_session_on_the_other(cluster: Cluster) -> None:
    browser = signed_in(cluster.one, "cleo")
    copy = browser.copy()  # the same cookie, kept elsewhere: only the server can end it
    assert_account_page(copy.get(cluster.two, "/account"), "cleo")

    reply = browser.submit(cluster.two, "/logout", {}, form_from=cluster.two)
    assert reply.status == 302, reply.body[:500]

    assert_sent_to_login(copy.get(cluster.one, "/account"))
    assert_sent_to_login(browser.get(cluster.one, "/account"))


def test_ending_a_device_on_one_server_signs_it_out_on_the_other(cluster: Cluster) -> None:
    laptop = signed_in(cluster.one, "bob")
    phone = signed_in(cluster.two, "bob")
    assert_account_page(laptop.get(cluster.one, "/account"), "bob")

    reply = phone.submit(
        cluster.two, "/account/sessions", {"session": "others"}, form_from=cluster.two
    )
    assert reply.status == 302, reply.body[:500]

    assert_sent_to_login(laptop.get(cluster.one, "/account"))
    assert_account_page(phone.get(cluster.one, "/account"), "bob")


# -- rate limits ---------------------------------------------------------------------------


def test_sign_in_attempts_on_both_servers_count_toward_one_limit(cluster: Cluster) -> None:
    """PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT counts in Redis, not per process."""
    servers = (cluster.one, cluster.two)
    attempts = [("wrong password", 422), ("wrong again", 422), (PASSWORD, 302), ("nope", 422)]
    assert len(attempts) == ATTEMPTS_PER_ACCOUNT
    for number, (password, status) in enumerate(attempts):
        reply = sign_in(Browser(), servers[number % 2], "eve", password)
        assert reply.status == status, (number, reply.status, reply.body[:300])

    # Each server saw only two attempts; together they reached the 15-minute limit.
    assert assert_throttled(sign_in(Browser(), cluster.one, "eve")) > 60
    # The JSON API on the other server counts the same attempts.
    assert_throttled(api(cluster.two, "POST", "/login", {"identity": "eve", "password": PASSWORD}))


def test_a_run_of_failures_on_both_servers_delays_the_account(cluster: Cluster) -> None:
    """The per-account failure count and its delay slot live in Redis too."""
    servers = (cluster.one, cluster.two)
    # The last try goes to the server that did not take the slot; its form is fetched
    # first, so the try follows the slot-taking failure at once (the slot lasts 2 s).
    last_server = servers[(FREE_FAILURES + 1) % 2]
    late = Browser()
    token = late.csrf_token(last_server, "/login")
    for number in range(FREE_FAILURES + 1):  # the last one takes the account's slot
        reply = sign_in(Browser(), servers[number % 2], "fay", f"wrong {number}")
        assert reply.status == 422, (number, reply.status, reply.body[:300])
    # The right password too must wait.
    fields = {"csrf_token": token, "identity": "fay", "password": PASSWORD}
    assert assert_throttled(late.post(last_server, "/login", fields)) <= 2


# -- API tokens ----------------------------------------------------------------------------


def test_api_tokens_from_one_server_work_on_the_other(cluster: Cluster) -> None:
    one, two = cluster.one, cluster.two
    assert api(one, "GET", "/jwks.json").json() == api(two, "GET", "/jwks.json").json()

    login = api(one, "POST", "/login", {"identity": "dora", "password": PASSWORD})
    assert login.status == 200, login.body
    first = login.json()
    me = api(two, "GET", "/me", token=first["access_token"])
    assert me.status == 200, me.body
    assert me.json()["username"] == "dora"

    rotated = api(two, "POST", "/refresh", {"refresh_token": first["refresh_token"]})
    assert rotated.status == 200, rotated.body
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert api(one, "GET", "/me", token=second["access_token"]).status == 200

    # The used token comes back on the other server: refused, and the session ends.
    reused = api(one, "POST", "/refresh", {"refresh_token": first["refresh_token"]})
    assert reused.status == 400, reused.body
    assert reused.json()["code"] == "token_invalid"
    after = api(two, "POST", "/refresh", {"refresh_token": second["refresh_token"]})
    assert after.status == 400, after.body
