"""Scale-out: two app servers on one PostgreSQL and one Redis behave as one site.

Two real HTTP servers, each its own process (as on two machines behind a load
balancer), run the demo with one ``SECRET_KEY`` on one database made for this
run and one Redis key prefix of this run. Every test runs twice: with the
sessions in the database (``PORTCULLIS_SESSION_STORE=sql``) and in Redis, where
each server also caches the signed-in users. Clients talk HTTP to both, so
nothing here can pass by sharing memory with the test:

- a sign-in on one server is valid on the other (the sessions are shared);
- a sign-out or an ended device on one is anonymous on the other at once;
- a role taken away or an account deactivated by an operator (the CLI, a third
  process) holds on either server's very next request, whatever it cached;
- sign-in limits count attempts made on both (Redis);
- API tokens from one verify on the other, and refresh-token rotation and
  reuse detection span both (keys derived from ``SECRET_KEY``, tokens in
  the database).

The servers are gunicorn (one sync worker each) when it is installed, else
Flask's own server. Both are stopped by PID, and the database and the Redis
keys go afterwards, whatever happened.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_portcullis import get_state
from flask_portcullis.caches import STALE, decode_user

from .conftest import FAST_HASH, PASSWORD, make_app, make_user, redis_key_prefix
from .databases import Server, database_server
from .servers import AppServer, Browser, Reply, server_environment, start_servers
from .stores import REDIS_URL

pytestmark = pytest.mark.services

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
USERS = ("ada", "bob", "cleo", "dora", "eve", "fay", "gus", "ivy")
ADMINS = ("hal", "kim")  # users with the admin role (its page is /admin/); never the last one
CLI_TIMEOUT = 60.0


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
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The PostgreSQL server; the databases made here are dropped afterwards."""
    with database_server("postgresql", tmp_path_factory.mktemp("postgresql")) as server:
        yield server


@dataclass
class Cluster:
    one: AppServer
    two: AppServer
    store: str  # PORTCULLIS_SESSION_STORE: "sql" or "redis"
    prefix: str  # the Redis key prefix of this cluster
    env: dict[str, str]  # the servers' environment (their FLASK_* settings)
    folder: Path
    user_ids: dict[str, int]

    def cli(self, *args: str) -> str:
        """Run ``flask <args>`` as an operator would: a process of its own, on the servers'
        settings (database, Redis, session store); return what it printed."""
        command = [sys.executable, "-m", "flask", "--app", "flask_portcullis.demo", *args]
        done = subprocess.run(
            command,
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def migrate_and_add_users(app: Flask) -> dict[str, int]:
    """Apply the shipped migrations (done by make_app) and add USERS and ADMINS, then let go
    of the database so only the servers hold connections. Return their ids by name."""
    try:
        ids = {name: make_user(app, name, f"{name}@example.com") for name in USERS}
        for name in ADMINS:
            ids[name] = make_user(app, name, f"{name}@example.com", roles=("admin",))
        return ids
    finally:
        with app.app_context():
            get_state(app).db.engine.dispose()


@pytest.fixture(scope="module", params=["sql", "redis"])
def cluster(
    request: pytest.FixtureRequest, postgres: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two demo servers on a database and a Redis prefix of their own, with one SECRET_KEY,
    their sessions in the database or in Redis (the parameter)."""
    store: str = request.param
    folder = tmp_path_factory.mktemp(f"scale-out-{store}")
    with redis_key_prefix() as prefix:
        config: dict[str, Any] = {
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": postgres.create_database(),
            "PORTCULLIS_REDIS_URL": REDIS_URL,
            "PORTCULLIS_REDIS_PREFIX": prefix,
            "PORTCULLIS_SESSION_STORE": REDIS_URL if store == "redis" else "sql",
            # Plain HTTP on loopback: the cookie must not be Secure-only.
            "PORTCULLIS_SECURE_COOKIES": False,
            "PORTCULLIS_NEW_DEVICE_NOTICE": False,
            **FAST_HASH,
            **LIMITS,
        }
        ids = migrate_and_add_users(make_app(folder / "setup", None, **config))
        env = server_environment(config, folder / "instance")
        one, two = start_servers(("one", "two"), env, folder)
        try:
            yield Cluster(one, two, store, prefix, env, folder, ids)
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


def cached_roles(cluster: Cluster, browser: Browser, username: str) -> tuple[str, ...] | None:
    """The roles server two caches in Redis for ``browser``'s user, once the stale mark left
    by the sign-in has run out (deleted here, as its TTL would) and the browser's next
    request has read them; None for the SQL store, which caches none."""
    if cluster.store != "redis":
        return None
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = f"{cluster.prefix}:u:{cluster.user_ids[username]}"
        if client.get(key) == STALE:
            client.delete(key)
        assert_account_page(browser.get(cluster.two, "/account"), username)
        entry: bytes | None = client.get(key)  # type: ignore[assignment]
        assert entry is not None
        assert entry != STALE
        return decode_user(entry)[1]
    finally:
        client.close()


def test_an_operators_change_holds_on_the_other_servers_next_request(cluster: Cluster) -> None:
    """A role removed and an account deactivated from the CLI (a process of its own, as on
    the first server's machine) hold on server two's very next request, though server two
    had the user cached (with the Redis store: checked, so the change has a copy to undo)."""
    admin = signed_in(cluster.one, "hal")
    ivy = signed_in(cluster.one, "ivy")
    caching = cluster.store == "redis"
    assert cached_roles(cluster, admin, "hal") == (("admin",) if caching else None)
    assert cached_roles(cluster, ivy, "ivy") == (() if caching else None)
    assert admin.get(cluster.two, "/admin/").status == 200
    assert_account_page(ivy.get(cluster.two, "/account"), "ivy")

    output = cluster.cli("users", "remove-role", "hal", "admin")
    # (the notice to hal comes first: without MAIL_SERVER the demo prints mail)
    assert output.strip().splitlines()[-1] == "hal no longer has role admin"
    assert admin.get(cluster.two, "/admin/").status == 403
    assert_account_page(admin.get(cluster.two, "/account"), "hal")  # still signed in
    assert admin.get(cluster.one, "/admin/").status == 403

    cluster.cli("users", "deactivate", "ivy")
    assert_sent_to_login(ivy.get(cluster.two, "/account"))
    assert_sent_to_login(ivy.get(cluster.one, "/account"))


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
