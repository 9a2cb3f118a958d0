"""Shared fixtures: the demo app on a fresh SQLite file, a client, a CLI runner, an SMTP
outbox and helpers."""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import flask_migrate
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.demo import MIGRATIONS, create_app
from flask_portcullis.settings import OWASP_ARGON2
from flask_portcullis.usecases import passwords
from flask_portcullis.usecases.client import Client

from .databases import BACKENDS, Server, database_server
from .stores import REDIS_URL as REDIS_URL  # tests import these from here too
from .stores import Memcached, memcached_server
from .stores import free_port as free_port

# pytester runs host test suites (test_testing_kit.py); the kit's fixtures serve the demo app
# below too; identity_providers has the oidc_provider and github_provider fixtures. Plugins may
# be named only here, in the top-level conftest.
pytest_plugins = ["pytester", "flask_portcullis.testing", "tests.identity_providers"]

PASSWORD = "correct horse battery staple"
# Cheap argon2id for speed; the real parameters are tested in test_passwords.py.
FAST_HASH = {
    "PORTCULLIS_ARGON2_TIME_COST": 1,
    "PORTCULLIS_ARGON2_MEMORY_COST": 64,
    "PORTCULLIS_ARGON2_PARALLELISM": 1,
}
# The shipped hash (OWASP), for the tests that measure or check it.
REAL_HASH: dict[str, Any] = {
    "PORTCULLIS_ARGON2_TIME_COST": OWASP_ARGON2["time_cost"],
    "PORTCULLIS_ARGON2_MEMORY_COST": OWASP_ARGON2["memory_cost"],
    "PORTCULLIS_ARGON2_PARALLELISM": OWASP_ARGON2["parallelism"],
}
# The shipped limits (test_login_limits pins them against the defaults), passed back over
# GENEROUS_LIMITS by the tests of throttling.
REAL_LIMITS: dict[str, Any] = {
    "PORTCULLIS_LOGIN_LIMIT_PER_CLIENT": "30/minute;300/hour",
    "PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT": "10 per 15 minutes",
    "PORTCULLIS_LOGIN_LIMIT_PER_DEVICE": "10 per 15 minutes",
    "PORTCULLIS_LOGIN_FREE_FAILURES": 5,
    "PORTCULLIS_REGISTER_LIMIT_PER_CLIENT": "10/hour",
}
# Most tests sign in far more often than a person would, all from 127.0.0.1; the
# throttling tests set the real limits back.
GENEROUS_LIMITS = {
    "PORTCULLIS_LOGIN_LIMIT_PER_CLIENT": "100000/minute",
    "PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT": "100000/minute",
    "PORTCULLIS_LOGIN_LIMIT_PER_DEVICE": "100000/minute",
    "PORTCULLIS_LOGIN_FREE_FAILURES": 99,
    "PORTCULLIS_REGISTER_LIMIT_PER_CLIENT": "100000/minute",
}
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
LINK = re.compile(r"https?://\S+")


@dataclass
class Mail:
    """One message as the SMTP server received it."""

    to: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None, "no text part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None, "no HTML part"
        return str(part.get_content())

    def link(self, path_prefix: str) -> str:
        """Return the path of the one link in the text part that starts with ``path_prefix``."""
        found = [urlsplit(str(url)) for url in LINK.findall(self.text)]
        paths = [u.path for u in found if u.path.startswith(path_prefix)]
        assert len(paths) == 1, f"expected one {path_prefix} link in:\n{self.text}"
        return paths[0]


class Outbox:
    """What a real SMTP server (aiosmtpd on 127.0.0.1) received."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        with self._lock:
            self.mails.append(Mail([str(t) for t in envelope.rcpt_tos], parsed))
        return "250 OK"

    def clear(self) -> None:
        with self._lock:
            self.mails.clear()

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if address in m.to]

    def wait_for(self, address: str, count: int = 1, timeout: float = 5.0) -> list[Mail]:
        """Wait (bounded) until ``address`` has ``count`` mails; some are sent in the background."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.to(address)
            if len(mails) >= count:
                return mails
            time.sleep(0.02)
        raise AssertionError(f"{address} got {len(self.to(address))} mails, expected {count}")


REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


@contextmanager
def redis_key_prefix() -> Iterator[str]:
    """Give a Redis key prefix of its own (on the real server); its keys go afterwards.

    A context manager rather than only a fixture, so fixtures of any scope can use it.
    """
    import redis

    from .services import require_service

    require_service("Redis", "127.0.0.1", 6379, lambda: redis.Redis.from_url(REDIS_URL).ping())
    prefix = "portcullis-test-" + secrets.token_hex(6)
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (on the real server); its keys go afterwards."""
    with redis_key_prefix() as prefix:
        yield prefix


@pytest.fixture(scope="session")
def memcached() -> Iterator[Memcached]:
    """One Memcached server of this run's own (tests use their own key prefixes)."""
    with memcached_server() as server:
        yield server


@pytest.fixture
def memcached_url(memcached: Memcached) -> str:
    if memcached.process is None:  # a test stopped it and failed before starting it again
        memcached.start()
    return memcached.url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Outbox, int]]:
    """One SMTP server for the run; each test clears its outbox."""
    outbox = Outbox()
    port = free_port()
    controller = Controller(outbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield outbox, port
    controller.stop()


@pytest.fixture
def outbox(smtp_server: tuple[Outbox, int]) -> Outbox:
    smtp_server[0].clear()
    return smtp_server[0]


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One database server per backend (``databases.BACKENDS``), its databases dropped at the
    end of the run."""
    backend: str = request.param
    with database_server(backend, tmp_path_factory.mktemp(f"db-{backend}")) as server:
        yield server


@dataclass
class FakeClock:
    """A clock the test moves by hand: the seam for every timeout test."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def make_app(
    tmp_path: Path, clock: FakeClock | None = None, *, migrate: bool = True, **config: Any
) -> Flask:
    """Build the demo app on its own SQLite file (or ``SQLALCHEMY_DATABASE_URI``), migrated
    with the shipped migrations unless ``migrate`` is false."""
    settings = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.db'}",
        **FAST_HASH,
        **GENEROUS_LIMITS,
        **config,
    }
    app = create_app(settings, instance_path=str(tmp_path / "instance"), clock=clock)
    if migrate:
        with app.app_context():
            flask_migrate.upgrade(directory=MIGRATIONS)
    return app


def dispose(app: Flask) -> None:
    """Drop the app's pooled connections (the next request opens new ones)."""
    with app.app_context():
        db = get_state(app).db
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once with the shipped migrations, for ``make_demo_app`` to copy."""
    folder = tmp_path_factory.mktemp("migrated")
    dispose(make_app(folder))
    return folder / "test.db"


class AppFactory(Protocol):
    def __call__(
        self,
        name: str = "app",
        *,
        clock: FakeClock | None = None,
        mail: bool = True,
        **config: Any,
    ) -> Flask: ...


@pytest.fixture
def make_demo_app(
    tmp_path: Path,
    smtp_server: tuple[Outbox, int],
    outbox: Outbox,
    migrated_database: Path,
) -> Iterator[AppFactory]:
    """Make demo apps: ``make_demo_app(name="app", *, clock=None, mail=True, **config)``.

    Each is ``make_app`` in ``tmp_path / name`` (apps of one name share a database; ``""``
    is ``tmp_path`` itself, the ``app`` fixture's), starting from a copy of the migrated
    database (its migrations then find nothing to do). With ``mail`` its mail goes to the
    test SMTP server (``outbox``); without, it has no ``MAIL_SERVER``. Afterwards each app's
    background mail is delivered and its connections closed.
    """
    apps: list[Flask] = []

    def factory(
        name: str = "app", *, clock: FakeClock | None = None, mail: bool = True, **config: Any
    ) -> Flask:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "test.db").exists():
            shutil.copyfile(migrated_database, folder / "test.db")
        settings = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_server[1]} if mail else {}
        app = make_app(folder, clock, **{**settings, **config})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            get_state(app).notifier.shutdown()  # background mail delivered before the next test
        dispose(app)


class LimitedAppFactory(Protocol):
    def __call__(self, name: str = "app", **config: Any) -> Flask: ...


@pytest.fixture
def limited_app(make_demo_app: AppFactory) -> LimitedAppFactory:
    """Make demo apps with the shipped limits (plus ``config``) and no mail server; apps of
    one name share a database. For the tests of throttling."""

    def factory(name: str = "app", **config: Any) -> Flask:
        return make_demo_app(name, mail=False, **{**REAL_LIMITS, **config})

    return factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(make_demo_app: AppFactory, clock: FakeClock) -> Flask:
    """The demo app in ``tmp_path``, on ``clock``; its mail goes to the test SMTP server."""
    return make_demo_app("", clock=clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def csrf_token(client: FlaskClient, path: str) -> str:
    """GET ``path`` and return the CSRF token of its form."""
    page = client.get(path)
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, f"no csrf_token on {path} (status {page.status_code})"
    return match.group(1)


def submit(client: FlaskClient, path: str, data: dict[str, Any], **kwargs: Any) -> TestResponse:
    """Fill in the form at ``path`` like a browser would: fetch it, then POST with its token."""
    token = csrf_token(client, path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def deactivate(app: Flask, user_id: int) -> None:
    """Deactivate an account through the service, as the CLI and the console do."""
    with app.app_context():
        state = get_state(app)
        account = state.accounts.get(user_id)
        assert account is not None
        state.accounts.set_active(account, False)


def reset_by_link(app: Flask, user_id: int, password: str) -> None:
    """Follow a fresh reset link for the account, as the reset page does (the use case)."""
    with app.test_request_context():  # the owner's notice links to the site
        state = get_state(app)
        account = state.accounts.get(user_id)
        assert account is not None
        client = Client(ip="192.0.2.250", user_agent="tests", at=state.clock())
        passwords.reset_password(state, client, state.links.reset_token(account), password)


def make_user(
    app: Flask,
    username: str = "ada",
    email: str = "ada@example.com",
    password: str = PASSWORD,
    roles: tuple[str, ...] = (),
    **kwargs: Any,
) -> int:
    """Create a user through the service layer and return the id."""
    with app.app_context():
        state = get_state(app)
        user = state.accounts.register(username, email, password, **kwargs)
        for role in roles:
            state.roles.ensure(role)
            state.roles.add_to_user(user, role)
        return user.id


def signed_in(client: FlaskClient) -> bool:
    """Tell whether ``client`` is signed in: /account answers, or sends it to sign in (and
    nowhere else: a redirect to re-authenticate or to set up 2FA is no sign-out)."""
    response = client.get("/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"].startswith("/login?next="), response.headers["Location"]
    return False


def login(
    client: FlaskClient,
    identity: str = "ada",
    password: str = PASSWORD,
    *,
    remember: bool = False,
    path: str = "/login",
) -> TestResponse:
    data: dict[str, Any] = {"identity": identity, "password": password}
    if remember:
        data["remember"] = "y"
    return submit(client, path, data)


@pytest.fixture
def user(app: Flask) -> int:
    return make_user(app)


@pytest.fixture
def auth_client(client: FlaskClient, user: int) -> FlaskClient:
    """A client signed in as ``ada``."""
    response = login(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


# -- the JSON API (api_client.py has its helpers) ------------------------------------------


@pytest.fixture
def root(app: Flask) -> int:
    """An administrator of the app (role admin): ``root``."""
    return make_user(app, "root", "root@example.com", roles=("admin",))


@pytest.fixture
def console(app: Flask, root: int) -> FlaskClient:
    """A browser signed in as ``root`` (so with a fresh password): the admin console."""
    client = app.test_client()
    login(client, "root")
    return client


@pytest.fixture
def api(client: FlaskClient) -> FlaskClient:
    """A client that only speaks JSON to /api/v1 (never a form, never a cookie it was given)."""
    return client


@pytest.fixture
def web(app: Flask, user: int) -> FlaskClient:
    """A browser signed in to the HTML pages as ada."""
    browser = app.test_client()
    assert login(browser).status_code == 302
    assert signed_in(browser)
    return browser


@pytest.fixture
def grace(app: Flask) -> int:
    return make_user(app, "grace", "grace@example.com")


PASSKEY_CHALLENGE = re.compile(r"challenge&#34;: &#34;[\w-]+")


def without_challenges(page: str) -> str:
    """The page with its passkey challenges blanked: random per render, like CSRF tokens."""
    return PASSKEY_CHALLENGE.sub("challenge&#34;: &#34;", page)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def path_of(response: TestResponse) -> str:
    """Where a redirect goes (the path only)."""
    assert response.status_code in (302, 303), response.status_code
    return urlsplit(response.headers["Location"]).path
