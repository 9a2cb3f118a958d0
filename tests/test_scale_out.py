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

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from flask_portcullis import get_state

from .conftest import (
    FAST_HASH,
    PASSWORD,
    REDIS_URL,
    make_app,
    make_user,
    redis_key_prefix,
)
from .databases import database_server
from .servers import AppServer, Browser, Reply, server_environment, start_servers

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
USERS = ("ada", "bob", "cleo", "dora", "eve", "fay", "gus")


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
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped afterwards."""
    with database_server("postgresql", tmp_path_factory.mktemp("postgresql")) as server:
        yield server.create_database()


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
