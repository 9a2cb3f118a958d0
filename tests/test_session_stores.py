"""The session stores (``PORTCULLIS_SESSION_STORE``: ``sql``, ``redis://``, ``memcached://``) on
PostgreSQL and real cache servers: the promises every store keeps, what a signed-in request
costs in SQL, changes made by another app instance, cache evictions, store outages, and how
``/healthz`` and ``flask portcullis doctor`` report the store.

SQLite is covered by test_sessions.py and test_device_sessions.py; here the tests share one
PostgreSQL database, migrated once and emptied before each test, and each test has its own
Redis prefix / Memcached namespace. Two app objects on one database and one store stand for
two processes.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pymemcache.client.base import Client as MemcacheClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.caches import SETTLE_SECONDS, STALE
from flask_portcullis.demo import db as demo_db
from flask_portcullis.web.keys import SESSION_KEY

from .api_client import PROBLEM, assert_invalid_token, assert_problem, body_of, get, post, refresh
from .api_client import sign_in as api_sign_in
from .conftest import (
    PASSWORD,
    REDIS_HOST,
    REDIS_PORT,
    AppFactory,
    FakeClock,
    deactivate,
    login,
    make_app,
    make_user,
    signed_in,
    submit,
    text,
)
from .databases import database_server
from .doctor_report import run_doctor
from .rows import sql_statements
from .services import service_unavailable
from .stores import STORES, free_port, memcached_server, same_store, store_config
from .test_health import TcpProxy, assert_unavailable

pytestmark = pytest.mark.services

LAPTOP = ("198.51.100.10", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
PHONE = ("198.51.100.20", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Safari/604.1")
TABLET = ("203.0.113.30", "Mozilla/5.0 (Linux; Android 14) Chrome/126.0")
API_CLIENT = "NotesApp/2.0 (API client)"
SESSION_FIELD = re.compile(r'name="session" value="([0-9a-f]{64})"')
ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
NEW_PASSWORD = "a brand new passphrase for ada"
CACHING = ("redis", "memcached")


# -- the database: migrated once, emptied before each test -----------------------------------


@pytest.fixture(scope="module")
def migrated_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database of this module's own, migrated once; dropped afterwards."""
    with database_server("postgresql", tmp_path_factory.mktemp("postgresql")) as server:
        url = server.create_database()
        app = make_app(tmp_path_factory.mktemp("migrate"), SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            get_state(app).db.engine.dispose()
        yield url


@pytest.fixture
def database_url(migrated_url: str) -> str:
    """The migrated database as the migrations left it: every row a test wrote is deleted
    first (the built-in admin role stays), while no app holds a connection to it."""
    engine = sa.create_engine(migrated_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for table in reversed(demo_db.metadata.sorted_tables):
                condition = table.c.name != "admin" if table.name == "roles" else sa.true()
                connection.execute(table.delete().where(condition))
    finally:
        engine.dispose()
    return migrated_url


class StoreAppFactory(Protocol):
    def __call__(self, kind: str, name: str = "app", **config: Any) -> Flask: ...


@pytest.fixture
def make_store_app(
    request: pytest.FixtureRequest,
    make_demo_app: AppFactory,
    clock: FakeClock,
    database_url: str,
) -> StoreAppFactory:
    """Make demo apps on this test's PostgreSQL database and store ``kind`` (apps of one test
    share both: two of them are two processes of one site)."""

    def factory(kind: str, name: str = "app", **config: Any) -> Flask:
        settings = {**store_config(request, kind), **config}
        return make_demo_app(name, clock=clock, SQLALCHEMY_DATABASE_URI=database_url, **settings)

    return factory


@pytest.fixture(params=STORES)
def app(request: pytest.FixtureRequest, make_store_app: StoreAppFactory) -> Flask:
    """The demo app on PostgreSQL and each session store in turn."""
    return make_store_app(request.param)


# -- the cache server, seen from the test on a connection of its own ------------------------


class CacheServer:
    """The Redis or Memcached behind an app's store, through a client of the test's own."""

    def __init__(self, app: Flask) -> None:
        self.store = get_state(app).sessions.store
        assert self.store.users is not None, "the SQL store has no cache"
        self.users = self.store.users
        url = urlsplit(app.config["PORTCULLIS_SESSION_STORE"])
        self.kind = self.store.kind
        self.redis: redis.Redis | None = None
        self.memcached: MemcacheClient | None = None
        if self.kind == "redis":
            self.redis = redis.Redis.from_url(url.geturl())
        else:
            self.memcached = MemcacheClient((url.hostname or "", url.port or 11211), timeout=2)

    def user_key(self, user_id: int) -> str:
        return self.users.key(user_id)

    def get(self, key: str) -> bytes | None:
        if self.redis is not None:
            value: bytes | None = self.redis.get(key)  # type: ignore[assignment]
            return value
        assert self.memcached is not None
        found: bytes | None = self.memcached.get(key)
        return found

    def delete(self, key: str) -> None:
        if self.redis is not None:
            self.redis.delete(key)
        else:
            assert self.memcached is not None
            self.memcached.delete(key, noreply=False)

    def flush(self) -> None:
        """Evict everything (Memcached's flush_all: what memory pressure may do at any time)."""
        assert self.memcached is not None
        assert self.memcached.flush_all(noreply=False)

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        if self.memcached is not None:
            self.memcached.close()


@pytest.fixture
def cache_server() -> Iterator[Callable[[Flask], CacheServer]]:
    """Open a CacheServer on an app's store; closed after the test."""
    opened: list[CacheServer] = []

    def open_for(app: Flask) -> CacheServer:
        server = CacheServer(app)
        opened.append(server)
        return server

    yield open_for
    for server in opened:
        server.close()


def lapse_mark(cache: CacheServer, user_id: int) -> None:
    """Let the user's stale mark (set by the last change to them) run out now: deleting it
    leaves the key as its TTL would."""
    key = cache.user_key(user_id)
    if cache.get(key) == STALE:
        cache.delete(key)


def settle(app: Flask, client: FlaskClient, user_id: int) -> None:
    """Bring a caching store to its steady state for ``client``'s user: the mark lapsed and
    the user cached again by a request. A change made after this has a cached entry to
    invalidate; without it the next request would read the database anyway, and a test of
    invalidation could not fail. Nothing to do for the SQL store."""
    if get_state(app).sessions.store.users is None:
        return
    cache = CacheServer(app)
    try:
        lapse_mark(cache, user_id)
        assert client.get("/").status_code == 200
        cached = cache.get(cache.user_key(user_id))
        assert cached is not None, "the user was not cached"
        assert cached != STALE
    finally:
        cache.close()


# -- helpers ----------------------------------------------------------------------------


def device(app: Flask, ip_and_agent: tuple[str, str], identity: str = "ada") -> FlaskClient:
    """A new browser with its own IP and user agent, signed in as ``identity``."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=ip_and_agent[0], HTTP_USER_AGENT=ip_and_agent[1])
    assert login(client, identity).status_code == 302
    return client


def api_device(app: Flask) -> tuple[FlaskClient, dict[str, Any]]:
    """An API client signed in as ada, and its token pair."""
    api = app.test_client()
    api.environ_base["HTTP_USER_AGENT"] = API_CLIENT
    return api, api_sign_in(api)


def devices_page(client: FlaskClient) -> str:
    """The table of signed-in devices on /account/sessions (not the trusted devices below)."""
    response = client.get("/account/sessions")
    assert response.status_code == 200, response.status_code
    page = html.unescape(text(response))
    return page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]


def session_id_of(client: FlaskClient, ip: str) -> str:
    """The id of the device of ``ip`` on ``client``'s device list (its "Sign out" button)."""
    for row in ROW.findall(devices_page(client)):
        if ip in row and (found := SESSION_FIELD.search(row)):
            return found.group(1)
    raise AssertionError(f"no other device of {ip} listed")


def session_token(app: Flask, client: FlaskClient) -> str:
    """The session token inside the browser's signed cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    token = serializer.loads(cookie.value)[SESSION_KEY]
    assert isinstance(token, str)
    return token


def live_sessions(app: Flask, user_id: int) -> int:
    with app.app_context():
        return len(get_state(app).sessions.list_for(user_id))


def change_password(client: FlaskClient) -> TestResponse:
    data = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    return submit(client, "/account/password", data)


# -- 1. the promises every store keeps, on PostgreSQL -----------------------------------------


def test_every_sign_in_is_a_new_session_and_logout_ends_it(app: Flask, user: int) -> None:
    """No fixation: a new token per sign-in; a signed-out cookie opens nothing anywhere."""
    browser = app.test_client()
    login(browser)
    first = session_token(app, browser)
    stolen = browser.get_cookie("session")
    assert stolen is not None
    assert submit(browser, "/logout", {}).status_code == 302
    assert not signed_in(browser)
    replay = app.test_client()
    replay.set_cookie("session", stolen.value)
    assert not signed_in(replay)
    login(browser)
    assert session_token(app, browser) != first
    assert signed_in(browser)
    assert live_sessions(app, user) == 1


def test_idle_timeout_absolute_lifetime_and_remember_me(
    app: Flask, clock: FakeClock, user: int
) -> None:
    """30 idle minutes end a session, 12 hours end even a busy one; remember-me outlives both
    and ends after 30 days."""
    start = clock.now
    idle, busy, remembered = app.test_client(), app.test_client(), app.test_client()
    login(idle)
    login(busy)
    login(remembered, remember=True)
    clock.advance(minutes=29)
    assert signed_in(idle)  # activity resets the idle timer
    assert signed_in(busy)
    clock.advance(minutes=29)
    assert signed_in(idle)
    assert signed_in(busy)
    clock.advance(minutes=20)
    assert signed_in(busy)
    clock.advance(minutes=11)
    assert not signed_in(idle)  # 31 minutes without a request
    assert signed_in(busy)
    end = start + timedelta(hours=12)
    while clock.now + timedelta(minutes=20) < end:  # busy: a request every 20 minutes
        clock.advance(minutes=20)
        assert signed_in(busy)
    clock.now = end - timedelta(minutes=1)
    assert signed_in(busy)
    clock.advance(minutes=1)
    assert not signed_in(busy)  # 12 h after sign-in, however busy
    assert signed_in(remembered)  # untouched for 12 h: neither limit applies to it
    clock.now = start + timedelta(days=30) - timedelta(minutes=1)
    assert signed_in(remembered)
    clock.advance(minutes=1)
    assert not signed_in(remembered)  # 30 days after sign-in


def test_the_device_list_and_ending_one_or_all_other_devices(app: Flask, user: int) -> None:
    """/account/sessions lists every device; ending one, then all others, signs them out."""
    laptop, phone, tablet = device(app, LAPTOP), device(app, PHONE), device(app, TABLET)
    page = devices_page(laptop)
    for ip, agent in (LAPTOP, PHONE, TABLET):
        assert ip in page
        assert agent in page
    assert page.count("this device") == 1
    phone_id = session_id_of(laptop, PHONE[0])
    assert submit(laptop, "/account/sessions", {"session": phone_id}).status_code == 302
    assert not signed_in(phone)
    assert signed_in(tablet)
    page = devices_page(laptop)
    assert PHONE[0] not in page
    assert TABLET[0] in page

    assert submit(laptop, "/account/sessions", {"session": "others"}).status_code == 302
    assert not signed_in(tablet)
    assert signed_in(laptop)
    page = devices_page(laptop)
    assert TABLET[0] not in page
    assert LAPTOP[0] in page
    assert live_sessions(app, user) == 1


def test_a_password_change_ends_the_other_sessions(app: Flask, user: int) -> None:
    phone, laptop = device(app, PHONE), device(app, LAPTOP)
    before = session_token(app, laptop)
    assert change_password(laptop).status_code == 302
    assert not signed_in(phone)
    assert signed_in(laptop)
    assert session_token(app, laptop) != before  # rotated on the change
    assert live_sessions(app, user) == 1


def test_deactivation_ends_every_session_at_once(app: Flask, user: int) -> None:
    phone, laptop = device(app, PHONE), device(app, LAPTOP)
    api, pair = api_device(app)
    deactivate(app, user)
    assert not signed_in(phone)
    assert not signed_in(laptop)
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))
    assert live_sessions(app, user) == 0


def test_deleting_the_account_ends_every_session(app: Flask, user: int) -> None:
    phone, laptop = device(app, PHONE), device(app, LAPTOP)
    api, pair = api_device(app)
    assert submit(laptop, "/account/delete", {"password": PASSWORD}).status_code == 302
    assert not signed_in(phone)
    assert not signed_in(laptop)
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))
    assert live_sessions(app, user) == 0


def test_sessions_survive_an_app_restart(
    app: Flask, make_store_app: StoreAppFactory, user: int
) -> None:
    """A deploy restarts the processes: the sessions are in the store, not in memory."""
    browser = device(app, LAPTOP)
    cookie = browser.get_cookie("session")
    assert cookie is not None
    restarted = make_store_app(get_state(app).sessions.store.kind, "restarted", **same_store(app))
    after = restarted.test_client()
    after.set_cookie("session", cookie.value)
    assert signed_in(after)
    assert "Mozilla/5.0 (X11; Linux x86_64)" in devices_page(after)


def test_an_api_session_is_a_device_the_browser_can_end(app: Flask, user: int) -> None:
    """The API's session shows in the device list, and ending it there stops its refresh."""
    api, pair = api_device(app)
    laptop = device(app, LAPTOP)
    listed = body_of(get(api, "/sessions", token=pair["access_token"]))["sessions"]
    assert sorted(s["user_agent"] for s in listed) == sorted([API_CLIENT, LAPTOP[1]])
    assert [s["current"] for s in listed if s["user_agent"] == API_CLIENT] == [True]
    page = devices_page(laptop)
    assert API_CLIENT in page
    pair = body_of(refresh(api, pair["refresh_token"]))  # refresh works while it lives

    [api_id] = [s["id"] for s in listed if s["user_agent"] == API_CLIENT]
    assert api_id in SESSION_FIELD.findall(page)
    assert submit(laptop, "/account/sessions", {"session": api_id}).status_code == 302
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert API_CLIENT not in devices_page(laptop)
    assert signed_in(laptop)


def test_sign_out_everywhere_stops_api_refresh_and_browsers(app: Flask, user: int) -> None:
    api, pair = api_device(app)
    laptop = device(app, LAPTOP)
    rotated = body_of(refresh(api, pair["refresh_token"]))
    assert post(api, "/logout-everywhere", token=rotated["access_token"]).status_code == 204
    assert_problem(refresh(api, rotated["refresh_token"]), 400, "token_invalid")
    assert not signed_in(laptop)
    assert live_sessions(app, user) == 0


def test_a_password_change_stops_api_refresh(app: Flask, user: int) -> None:
    api, pair = api_device(app)
    laptop = device(app, LAPTOP)
    assert change_password(laptop).status_code == 302
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert API_CLIENT not in devices_page(laptop)
    assert signed_in(laptop)


# -- 2. SQL per signed-in request -------------------------------------------------------------


def page_and_sql(seen: list[str], client: FlaskClient, path: str) -> tuple[str, list[str]]:
    """One signed-in GET of ``path``: its page and the statements it ran."""
    seen.clear()
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return text(page), list(seen)


# The SQL a signed-in page costs, and the page that also writes last-seen (once a minute).
PAGE_STATEMENTS = {"sql": 1, "redis": 0, "memcached": 0}
TOUCH_STATEMENTS = {"sql": 2, "redis": 0, "memcached": 1}


def test_sql_statements_of_a_signed_in_page(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    """SQL: one statement (session, user and roles). Redis: none, the last-seen write
    included (it goes to Redis). Memcached, once warm: none, but the once-a-minute last-seen
    write goes to the database, the record. The pages show the Admin link: the roles were
    read from somewhere."""
    user_id = make_user(app, roles=("admin",))
    login(client)
    kind = get_state(app).sessions.store.kind
    settle(app, client, user_id)
    client.get("/")  # the session is read into the cache too
    with sql_statements(app) as seen:
        for path in ("/", "/account", "/", "/account"):
            page, run = page_and_sql(seen, client, path)
            assert ">Admin<" in page
            assert len(run) == PAGE_STATEMENTS[kind], (path, run)
        clock.advance(seconds=61)
        page, touched = page_and_sql(seen, client, "/")
        assert ">Admin<" in page
        assert len(touched) == TOUCH_STATEMENTS[kind], touched
        if touched:
            assert touched[-1].lstrip().upper().startswith("UPDATE"), touched
        _, run = page_and_sql(seen, client, "/account")
        assert len(run) == PAGE_STATEMENTS[kind], run


@pytest.mark.parametrize("kind", CACHING)
def test_after_a_change_to_the_user_they_are_read_again_then_cached(
    make_store_app: StoreAppFactory,
    cache_server: Callable[[Flask], CacheServer],
    kind: str,
) -> None:
    """A change marks the cached user stale: while the mark stands (SETTLE_SECONDS after the
    commit) each request reads the user from the database and sees the change; once it has lapsed,
    one request reads and caches them again, and the next ones run no SQL."""
    app = make_store_app(kind)
    user_id = make_user(app, roles=("admin",))
    client = app.test_client()
    login(client)
    settle(app, client, user_id)
    client.get("/")
    cache = cache_server(app)
    key = cache.user_key(user_id)
    with sql_statements(app) as seen:
        page, run = page_and_sql(seen, client, "/")
        assert ">Admin<" in page
        assert run == []

        with app.app_context():
            state = get_state(app)
            user = state.accounts.get(user_id)
            assert user is not None
            state.roles.remove_from_user(user, "admin")
        assert cache.get(key) == STALE
        if cache.redis is not None:
            assert 0 < cache.redis.ttl(key) <= SETTLE_SECONDS  # the mark lapses by itself
        for _ in range(2):
            page, run = page_and_sql(seen, client, "/")
            assert ">Admin<" not in page
            assert len(run) == 1, run  # the user, from the database

        lapse_mark(cache, user_id)
        page, run = page_and_sql(seen, client, "/")
        assert ">Admin<" not in page
        assert len(run) == 1, run  # read once, and cached
        for path in ("/", "/account"):
            page, run = page_and_sql(seen, client, path)
            assert ">Admin<" not in page
            assert run == [], run


@pytest.mark.parametrize("kind", CACHING)
def test_a_core_update_announced_with_users_changed_reaches_the_next_request(
    make_store_app: StoreAppFactory, kind: str
) -> None:
    """A host's own Core UPDATE bypasses the ORM's listeners: ``users_changed`` marks the
    cached user, so the next page shows the new address (and without it, the old one)."""
    app = make_store_app(kind)
    user_id = make_user(app)
    laptop = app.test_client()
    login(laptop)
    settle(app, laptop, user_id)

    def rename(address: str, *, announce: bool) -> None:
        with app.app_context():
            state = get_state(app)
            User = state.models.User
            changed = sa.update(User).where(User.id == user_id).values(email=address)
            state.db.session.execute(changed)
            if announce:
                state.sessions.users_changed([user_id])
            state.db.session.commit()

    rename("quiet@example.com", announce=False)
    assert "ada@example.com" in text(laptop.get("/account"))  # the cache did not hear of it
    rename("ada.new@example.com", announce=True)
    assert "ada.new@example.com" in text(laptop.get("/account"))


@pytest.mark.parametrize("kind", CACHING)
def test_a_sign_in_elsewhere_leaves_the_cached_user_alone(
    make_store_app: StoreAppFactory, kind: str
) -> None:
    """Signing in changes only what no signed-in page shows (last_login_at): the other
    devices' pages stay free of SQL for the user."""
    app = make_store_app(kind)
    user_id = make_user(app)
    laptop = app.test_client()
    login(laptop)
    settle(app, laptop, user_id)
    login(app.test_client())  # a second device signs in
    with sql_statements(app) as seen:
        _, run = page_and_sql(seen, laptop, "/account")
    assert run == [], run


@pytest.mark.parametrize("kind", CACHING)
def test_a_reader_that_read_before_a_change_never_caches_what_it_read(
    make_store_app: StoreAppFactory, cache_server: Callable[[Flask], CacheServer], kind: str
) -> None:
    """The race a cache invites: a request misses, reads the user (an admin) from the
    database, and stalls; meanwhile the role is removed and committed, and its marks lapse.
    When the stalled request goes on, what it read must not land in the cache: it filled
    through a lease, which the mark replaced, so nothing later acts on the old role."""
    app = make_store_app(kind)
    user_id = make_user(app, roles=("admin",))
    cache = cache_server(app)
    users = cache.users
    key = users.key(user_id)
    cache.delete(key)
    read_done, go_on = threading.Event(), threading.Event()
    real_read = users._read

    def slow_read(wanted: int) -> Any:
        user = real_read(wanted)
        read_done.set()
        assert go_on.wait(10)
        return user

    users._read = slow_read
    seen: list[Any] = []

    def stalled_request() -> None:
        with app.app_context():
            seen.append(users.load(user_id, None))

    reader = threading.Thread(target=stalled_request)
    reader.start()
    try:
        assert read_done.wait(10)
        users._read = real_read
        with app.app_context():
            state = get_state(app)
            user = state.accounts.get(user_id)
            assert user is not None
            state.roles.remove_from_user(user, "admin")
        time.sleep(SETTLE_SECONDS + 0.5)  # the marks lapse before the reader goes on
    finally:
        go_on.set()
        reader.join(10)
    assert [role.name for role in seen[0].roles] == ["admin"]  # it did read the old row
    assert cache.get(key) is None or cache.get(key) == STALE, cache.get(key)
    with app.app_context():
        fresh = users.get(user_id)
    assert fresh is not None
    assert not fresh.roles
    browser = app.test_client()
    login(browser)
    assert browser.get("/admin/").status_code == 403


def test_a_memcached_session_whose_row_went_is_not_kept_alive_by_its_touch(
    make_store_app: StoreAppFactory, cache_server: Callable[[Flask], CacheServer], clock: FakeClock
) -> None:
    """Once a minute the page writes last-seen; when the row is gone (however the cache came
    to hold it), that write finds nothing, the cached copy is marked stale and the browser
    is signed out, instead of the cache's copy living on."""
    app = make_store_app("memcached")
    make_user(app)
    browser = app.test_client()
    login(browser)
    assert signed_in(browser)
    with app.app_context():  # the row goes behind the cache's back
        state = get_state(app)
        Session = state.models.Session
        state.db.session.execute(sa.delete(Session))
        state.db.session.commit()
    assert signed_in(browser)  # the cached copy, until the next write of last-seen
    clock.advance(seconds=61)
    assert not signed_in(browser)
    assert not signed_in(browser)


def test_the_doctor_refuses_a_redis_that_may_evict_any_key(
    make_store_app: StoreAppFactory, tmp_path: Path
) -> None:
    """An allkeys-* eviction policy could drop a user's set of sessions, and "sign out
    everywhere" would miss some: the doctor fails it (a Redis of the test's own)."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server", "127.0.0.1", "no redis-server binary")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--maxmemory-policy", "allkeys-lru", "--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        until(lambda: answers(url), f"redis-server on {port}")
        app = make_store_app("redis", PORTCULLIS_SESSION_STORE=url)
        line = run_doctor(app).findings["session store"]
        assert line.status == "FAIL", line
        assert "allkeys-lru" in line.message
    finally:
        server.terminate()
        server.wait(10)


# -- 3. a change made by another instance takes effect on the very next request ---------------


@pytest.fixture
def two_instances(app: Flask, make_store_app: StoreAppFactory) -> tuple[Flask, Flask]:
    """App A (the ``app`` fixture) and app B: two processes on one database and one store."""
    other = make_store_app(get_state(app).sessions.store.kind, "b", **same_store(app))
    return app, other


def test_a_role_removed_by_another_instance_is_gone_on_the_next_request(
    two_instances: tuple[Flask, Flask],
) -> None:
    a, b = two_instances
    user_id = make_user(a, roles=("admin",))
    browser = device(a, LAPTOP)
    settle(a, browser, user_id)
    assert browser.get("/admin/").status_code == 200
    assert ">Admin<" in text(browser.get("/"))

    with b.app_context():
        state = get_state(b)
        user = state.accounts.get(user_id)
        assert user is not None
        assert state.roles.remove_from_user(user, "admin")

    assert browser.get("/admin/").status_code == 403
    assert ">Admin<" not in text(browser.get("/"))
    settle(a, browser, user_id)  # cached again: without the role
    assert browser.get("/admin/").status_code == 403


def test_a_deactivation_by_another_instance_signs_out_on_the_next_request(
    two_instances: tuple[Flask, Flask],
) -> None:
    a, b = two_instances
    user_id = make_user(a)
    browser = device(a, LAPTOP)
    api, pair = api_device(a)
    settle(a, browser, user_id)
    assert get(api, "/me", token=pair["access_token"]).status_code == 200

    result = b.test_cli_runner().invoke(args=["users", "deactivate", "ada"])
    assert result.exit_code == 0, result.output

    assert not signed_in(browser)
    assert_invalid_token(get(api, "/me", token=pair["access_token"]))  # the bearer check
    assert login(a.test_client()).status_code != 302


def test_an_email_change_by_another_instance_shows_on_the_next_request(
    two_instances: tuple[Flask, Flask],
) -> None:
    a, b = two_instances
    user_id = make_user(a)
    browser = device(a, LAPTOP)
    settle(a, browser, user_id)
    assert "ada@example.com" in text(browser.get("/"))

    with b.test_request_context():  # the confirmation link followed on B
        state = get_state(b)
        user = state.accounts.get(user_id)
        assert user is not None
        _, token = state.links.email_change_token(user, "ada.new@example.com")
        state.links.confirm_email_change(token)

    page = text(browser.get("/"))
    assert "ada.new@example.com" in page
    assert "ada@example.com" not in page
    assert "ada.new@example.com" in text(browser.get("/account"))


# -- 4. a Memcached eviction never revives nor ends a session ---------------------------------


def test_memcached_flushes_neither_end_nor_revive_sessions(
    make_store_app: StoreAppFactory, cache_server: Callable[[Flask], CacheServer]
) -> None:
    """Everything evicted (a Memcached of this test's own, flushed): the signed-in devices stay
    signed in, and an ended one stays ended; the database is the record."""
    with memcached_server() as own:
        app = make_store_app("memcached", PORTCULLIS_SESSION_STORE=own.url)
        user_id = make_user(app)
        laptop, phone = device(app, LAPTOP), device(app, PHONE)
        settle(app, laptop, user_id)
        assert signed_in(phone)
        cache = cache_server(app)
        assert cache.get(cache.user_key(user_id)) is not None  # the flush evicts something

        cache.flush()
        assert signed_in(laptop)
        assert signed_in(phone)

        phone_id = session_id_of(laptop, PHONE[0])
        assert submit(laptop, "/account/sessions", {"session": phone_id}).status_code == 302
        assert not signed_in(phone)
        cache.flush()
        assert not signed_in(phone)
        assert signed_in(laptop)
        assert live_sessions(app, user_id) == 1


def test_memcached_losing_the_user_entry_changes_nothing(
    make_store_app: StoreAppFactory, cache_server: Callable[[Flask], CacheServer]
) -> None:
    app = make_store_app("memcached")
    user_id = make_user(app, roles=("admin",))
    laptop = device(app, LAPTOP)
    settle(app, laptop, user_id)
    cache = cache_server(app)
    key = cache.user_key(user_id)
    cache.delete(key)
    assert cache.get(key) is None
    assert laptop.get("/admin/").status_code == 200  # still signed in, still an admin
    assert cache.get(key) not in (None, STALE)  # read back into the cache
    assert signed_in(laptop)


# -- 5. the store goes away and comes back ----------------------------------------------------


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    """Wait (bounded) for ``check``: a client may need a try or two to reconnect."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def assert_health(client: FlaskClient, status: int, checks: dict[str, str]) -> None:
    response = client.get("/healthz")
    assert response.status_code == status, text(response)
    assert response.json == {"status": "ok" if status == 200 else "unavailable", "checks": checks}


def assert_store_outage(
    app: Flask, clock: FakeClock, browser: FlaskClient, access_token: str
) -> None:
    """With the store away: the clear 503 page (no content of the signed-in user), 503
    problem+json for the API, /healthz and the doctor say so, and nobody can sign in."""
    for path in ("/", "/account", "/account/sessions"):
        page = browser.get(path)
        assert_unavailable(page, f"GET {path} with the session store away")
        assert "ada@example.com" not in text(page)
        assert "Sign out" not in text(page)
    me = get(app.test_client(), "/me", token=access_token)
    assert me.status_code == 503, text(me)
    assert me.mimetype == PROBLEM
    assert "Traceback" not in text(me)
    assert int(me.headers["Retry-After"]) > 0
    assert_health(browser, 503, {"database": "ok", "session_store": "unreachable"})
    line = run_doctor(app).findings["session store"]
    assert line.status == "FAIL", line
    assert_unavailable(login(app.test_client()), "POST /login with the session store away")


def assert_back(browser: FlaskClient, access_token: str, app: Flask) -> None:
    """The same browser and token work again: the session was never lost."""
    until(lambda: browser.get("/healthz").status_code == 200, "/healthz back to 200")
    assert_health(browser, 200, {"database": "ok", "session_store": "ok"})
    account = browser.get("/account")
    assert account.status_code == 200, account.status_code
    assert "ada@example.com" in text(account)
    me = get(app.test_client(), "/me", token=access_token)
    assert me.status_code == 200, text(me)


def test_redis_going_away_and_coming_back(
    make_store_app: StoreAppFactory, clock: FakeClock, redis_prefix: str
) -> None:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    proxy.start()
    try:
        app = make_store_app(
            "redis",
            PORTCULLIS_SESSION_STORE=f"redis://127.0.0.1:{proxy.port}/0",
            PORTCULLIS_REDIS_PREFIX=redis_prefix,
        )
        make_user(app)
        browser = device(app, LAPTOP)
        _, pair = api_device(app)
        assert_health(browser, 200, {"database": "ok", "session_store": "ok"})

        proxy.stop()
        assert_store_outage(app, clock, browser, pair["access_token"])

        proxy.start()
        assert_back(browser, pair["access_token"], app)
    finally:
        proxy.stop()


def test_memcached_going_away_and_coming_back(
    make_store_app: StoreAppFactory, clock: FakeClock
) -> None:
    """A Memcached of this test's own (the run's shared one is left alone), stopped and
    started again on its port: empty when back, and the database still has the session."""
    with memcached_server() as own:
        app = make_store_app("memcached", PORTCULLIS_SESSION_STORE=own.url)
        make_user(app)
        browser = device(app, LAPTOP)
        _, pair = api_device(app)
        assert signed_in(browser)
        assert_health(browser, 200, {"database": "ok", "session_store": "ok"})

        own.stop()
        assert_store_outage(app, clock, browser, pair["access_token"])

        own.start()
        assert_back(browser, pair["access_token"], app)


# -- 6. /healthz and the doctor name the store ------------------------------------------------


def test_healthz_and_doctor_report_the_session_store(app: Flask) -> None:
    kind = get_state(app).sessions.store.kind
    checks = {"database": "ok"} if kind == "sql" else {"database": "ok", "session_store": "ok"}
    assert_health(app.test_client(), 200, checks)
    line = run_doctor(app).findings["session store"]
    assert line.status == "PASS", line
    assert line.message.startswith(f"{kind}, reachable"), line


@pytest.mark.parametrize("scheme", ["redis", "memcached"])
def test_an_unreachable_store_fails_healthz_and_the_doctor(
    make_store_app: StoreAppFactory, scheme: str
) -> None:
    """Nothing listens at the configured address: /healthz 503 names the store, the doctor
    fails its line."""
    url = f"{scheme}://127.0.0.1:{free_port()}" + ("/0" if scheme == "redis" else "")
    app = make_store_app(scheme, PORTCULLIS_SESSION_STORE=url)
    assert_health(app.test_client(), 503, {"database": "ok", "session_store": "unreachable"})
    line = run_doctor(app).findings["session store"]
    assert line.status == "FAIL", line
    assert scheme in line.message
