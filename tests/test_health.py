"""``/healthz`` and the behaviour during outages: the database (a SQLite file made unreadable,
PostgreSQL on a closed port, a real PostgreSQL that goes away and comes back) and Redis
(unreachable, or going away and coming back).

While the database is down, pages that need it answer the standalone 503 page (status 503,
``Retry-After``, "We will be right back", no trace or SQL), never a 500, and the failed
requests leave nothing behind once the database is back.

PostgreSQL (127.0.0.1:5432, user ``postgres``) and Redis (127.0.0.1:6379) are real servers:
each test makes its own database or key prefix and removes it afterwards. "Going away" is a
small TCP proxy in front of the real server that the test stops and starts again, so one
running app sees the outage and the recovery on its own connections.
"""

from __future__ import annotations

import secrets
import select
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.demo import MIGRATIONS

from .conftest import (
    PASSWORD,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    AppFactory,
    csrf_token,
    dispose,
    free_port,
    login,
    make_app,
    make_user,
    text,
)
from .rows import count
from .services import require_service

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
SECRET_KEY = "health-test-secret-key-" + "y" * 32
UNAVAILABLE = "We will be right back"
# Nothing of the failure may reach the visitor: no trace, no driver, no SQL, no file paths.
LEAKS = (
    "Traceback",
    'File "',
    "sqlite",
    "psycopg",
    "sqlalchemy",
    "OperationalError",
    "DatabaseError",
    "SELECT ",
    "INSERT ",
    "password_hash",
    "test.db",
)
TABLES = ("users", "user_sessions", "audit_events")


# -- helpers -----------------------------------------------------------------------------------


def assert_unavailable(response: TestResponse, what: str = "") -> None:
    """The clear 503 page: status, Retry-After, the message, and nothing of the failure."""
    body = text(response)
    assert response.status_code == 503, f"{what}: {response.status_code}\n{body[:500]}"
    assert int(response.headers["Retry-After"]) > 0, what
    assert response.mimetype == "text/html", what
    assert UNAVAILABLE in body, f"{what}: {body[:500]}"
    for leak in LEAKS:
        assert leak.lower() not in body.lower(), f"{what}: the 503 page shows {leak!r}"


def assert_page_or_unavailable(response: TestResponse, what: str) -> None:
    """An anonymous page that needs no database may still render; else the clear 503 page."""
    if response.status_code == 200:
        assert "Traceback" not in text(response), what
    else:
        assert_unavailable(response, what)


def assert_health(response: TestResponse, status: int, checks: dict[str, str]) -> None:
    assert response.status_code == status, text(response)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    expected = {"status": "ok" if status == 200 else "unavailable", "checks": checks}
    assert response.json == expected


def counts(app: Flask) -> dict[str, int]:
    """Rows in the tables a failed request could have written to."""
    return {table: count(app, table) for table in TABLES}


def signed_in_client(app: Flask) -> FlaskClient:
    """A client signed in as ``ada`` (who must exist)."""
    client = app.test_client()
    response = login(client)
    assert response.status_code == 302, text(response)[:500]
    assert client.get("/account").status_code == 200
    return client


class Forms:
    """CSRF tokens fetched while the database answered, to submit forms during an outage."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.tokens = {
            path: csrf_token(client, path) for path in ("/login", "/register", "/forgot-password")
        }

    def post(self, path: str, data: dict[str, str]) -> TestResponse:
        return self.client.post(path, data={"csrf_token": self.tokens[path], **data})

    def login(self) -> TestResponse:
        return self.post("/login", {"identity": "ada", "password": PASSWORD})

    def register(self, username: str = "newcomer") -> TestResponse:
        return self.post(
            "/register",
            {
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            },
        )

    def forgot_password(self) -> TestResponse:
        return self.post("/forgot-password", {"email": "ada@example.com"})


def assert_pages_unavailable(signed_in: FlaskClient, forms: Forms) -> None:
    """Every page that needs the database answers the clear 503 page, never a 500."""
    assert_unavailable(signed_in.get("/"), "GET / signed in")
    assert_unavailable(signed_in.get("/account"), "GET /account signed in")
    assert_unavailable(signed_in.get("/account/sessions"), "GET /account/sessions signed in")
    assert_unavailable(forms.login(), "POST /login")
    assert_unavailable(forms.register(), "POST /register")
    assert_unavailable(forms.forgot_password(), "POST /forgot-password")
    anonymous = forms.client
    assert_page_or_unavailable(anonymous.get("/"), "GET / anonymous")
    assert_page_or_unavailable(anonymous.get("/login"), "GET /login")


def unmigrated_app(tmp_path: Path, database_url: str) -> Flask:
    """The demo app on ``database_url``, without running migrations (it may not answer)."""
    folder = tmp_path / f"unmigrated-{secrets.token_hex(4)}"
    return make_app(
        folder, migrate=False, SECRET_KEY=SECRET_KEY, SQLALCHEMY_DATABASE_URI=database_url
    )


def closed_port_url() -> str:
    """PostgreSQL on a port nothing listens on: connections are refused at once."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"


class TcpProxy:
    """Forward 127.0.0.1:<port> to a real server; ``stop`` is an outage, ``start`` the recovery.

    Stopping closes the listening socket and every forwarded connection, as when the server
    or the network goes away; the app's pooled connections die with them.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self._stop = threading.Event()
        self._spawn(self._accept, listener, self._stop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        alive = [thread for thread in self._threads if thread.is_alive()]
        self._threads = []
        assert not alive, "proxy threads did not stop"

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=3)
                except OSError:
                    client.close()
                    continue
                client.setblocking(True)
                upstream.settimeout(None)
                self._spawn(self._pump, client, upstream, stop)

    @staticmethod
    def _pump(client: socket.socket, upstream: socket.socket, stop: threading.Event) -> None:
        with client, upstream:
            while not stop.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for source in readable:
                    destination = upstream if source is client else client
                    try:
                        data = source.recv(65536)
                        if not data:
                            return
                        destination.sendall(data)
                    except OSError:
                        return


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test's own; dropped afterwards."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    def probe() -> None:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    try:
        require_service("PostgreSQL", PG_HOST, PG_PORT, probe)
        name = f"portcullis_health_{secrets.token_hex(6)}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield name
        finally:
            with admin.connect() as connection:
                # FORCE ends connections a failed test may have leaked, so DROP never hangs.
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(PG_HOST, PG_PORT)
    proxy.start()
    yield proxy
    proxy.stop()


# -- /healthz when everything answers -----------------------------------------------------------


def test_healthz_is_ok_json(client: FlaskClient) -> None:
    assert_health(client.get("/healthz"), 200, {"database": "ok"})


def test_healthz_needs_no_sign_in_and_sets_no_cookie(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


@pytest.mark.services
def test_healthz_checks_redis_when_configured(make_demo_app: AppFactory, redis_prefix: str) -> None:
    app = make_demo_app(
        mail=False, PORTCULLIS_REDIS_URL=REDIS_URL, PORTCULLIS_REDIS_PREFIX=redis_prefix
    )
    assert_health(app.test_client().get("/healthz"), 200, {"database": "ok", "redis": "ok"})


# -- Redis unreachable --------------------------------------------------------------------------


def test_healthz_503_when_redis_is_unreachable(make_demo_app: AppFactory) -> None:
    app = make_demo_app(mail=False, PORTCULLIS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    make_user(app)
    client = app.test_client()
    assert_health(client.get("/healthz"), 503, {"database": "ok", "redis": "unreachable"})
    # Sign-in fails closed with the clear page; pages that need no limit keep working.
    assert_unavailable(login(client), "POST /login with Redis down")
    assert client.get("/login").status_code == 200
    assert client.get("/register").status_code == 200
    assert counts(app)["user_sessions"] == 0


@pytest.mark.services
def test_redis_going_away_and_coming_back(make_demo_app: AppFactory, redis_prefix: str) -> None:
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    proxy.start()
    try:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        app = make_demo_app(
            mail=False, PORTCULLIS_REDIS_URL=url, PORTCULLIS_REDIS_PREFIX=redis_prefix
        )
        make_user(app)
        client = app.test_client()
        assert_health(client.get("/healthz"), 200, {"database": "ok", "redis": "ok"})

        proxy.stop()
        assert_health(client.get("/healthz"), 503, {"database": "ok", "redis": "unreachable"})
        assert_unavailable(login(client), "POST /login while Redis is away")
        assert counts(app)["user_sessions"] == 0

        proxy.start()
        assert_health(client.get("/healthz"), 200, {"database": "ok", "redis": "ok"})
        assert login(client).status_code == 302
        assert client.get("/account").status_code == 200
    finally:
        proxy.stop()


# -- SQLite: the file made unreadable -------------------------------------------------------------


def break_file(database: Path, how: str) -> None:
    """Make the SQLite file unusable even for root (chmod would not stop root reading it)."""
    if how == "garbage":
        database.write_bytes(b"this is not an SQLite database\n" * 256)
    else:
        database.unlink()
        database.mkdir()


def repair_file(database: Path, how: str, original: bytes) -> None:
    if how == "directory":
        database.rmdir()
    database.write_bytes(original)


@pytest.mark.parametrize("how", ["garbage", "directory"])
def test_sqlite_file_unreadable(make_demo_app: AppFactory, tmp_path: Path, how: str) -> None:
    app = make_demo_app(mail=False)
    make_user(app)
    signed_in = signed_in_client(app)
    forms = Forms(app.test_client())
    before = counts(app)
    database = tmp_path / "app" / "test.db"
    # Pooled connections would keep the old file open; closing the last one also writes
    # the demo's write-ahead log back into the file, so the copy below is whole.
    dispose(app)
    original = database.read_bytes()
    break_file(database, how)
    try:
        assert_health(forms.client.get("/healthz"), 503, {"database": "unreachable"})
        assert_pages_unavailable(signed_in, forms)
        assert_health(forms.client.get("/healthz"), 503, {"database": "unreachable"})
    finally:
        dispose(app)
        repair_file(database, how, original)

    # Back up: nothing the failed requests tried was written, and nobody was signed out.
    assert counts(app) == before
    assert_health(forms.client.get("/healthz"), 200, {"database": "ok"})
    account = signed_in.get("/account")
    assert account.status_code == 200
    assert "ada" in text(account)
    assert forms.register().status_code == 302  # the form works again (optional verification)
    assert counts(app)["users"] == before["users"] + 1


# -- PostgreSQL -------------------------------------------------------------------------------


def test_healthz_503_when_postgresql_port_is_closed(tmp_path: Path) -> None:
    app = unmigrated_app(tmp_path, closed_port_url())
    try:
        client = app.test_client()
        assert_health(client.get("/healthz"), 503, {"database": "unreachable"})
        assert_page_or_unavailable(client.get("/login"), "GET /login")
        token = csrf_token(client, "/login")
        sign_in = client.post(
            "/login", data={"csrf_token": token, "identity": "ada", "password": PASSWORD}
        )
        assert_unavailable(sign_in, "POST /login")
    finally:
        dispose(app)


@pytest.mark.services
def test_postgresql_session_cookie_on_an_app_whose_database_is_unreachable(
    tmp_path: Path, pg_database: str
) -> None:
    """A browser signed in on the real server keeps its cookie; a second app whose database
    is on a closed port (same secret key) answers 503 to it, and writes nothing anywhere."""
    good = unmigrated_app(
        tmp_path, f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{pg_database}"
    )
    broken = unmigrated_app(tmp_path, closed_port_url())
    try:
        with good.app_context():
            flask_migrate.upgrade(directory=MIGRATIONS)
        make_user(good)
        signed_in = signed_in_client(good)
        before = counts(good)
        cookie = signed_in.get_cookie("session")
        assert cookie is not None

        outage = broken.test_client()
        outage.set_cookie("session", cookie.value)
        forms = Forms(broken.test_client())
        assert_health(outage.get("/healthz"), 503, {"database": "unreachable"})
        assert_pages_unavailable(outage, forms)

        assert counts(good) == before
        assert_health(signed_in.get("/healthz"), 200, {"database": "ok"})
        assert signed_in.get("/account").status_code == 200
    finally:
        dispose(broken)
        dispose(good)


@pytest.mark.services
def test_postgresql_going_away_and_coming_back(
    tmp_path: Path, pg_database: str, pg_proxy: TcpProxy
) -> None:
    """One running app loses its PostgreSQL (every connection cut), answers 503 throughout,
    and works again, with nothing written by the failed requests, when the server is back."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_proxy.port}/{pg_database}"
    app = unmigrated_app(tmp_path, url + "?connect_timeout=2")
    try:
        with app.app_context():
            flask_migrate.upgrade(directory=MIGRATIONS)
        make_user(app)
        signed_in = signed_in_client(app)
        forms = Forms(app.test_client())
        before = counts(app)
        assert_health(forms.client.get("/healthz"), 200, {"database": "ok"})

        pg_proxy.stop()
        assert_health(forms.client.get("/healthz"), 503, {"database": "unreachable"})
        assert_pages_unavailable(signed_in, forms)
        assert_health(forms.client.get("/healthz"), 503, {"database": "unreachable"})

        pg_proxy.start()
        assert_health(forms.client.get("/healthz"), 200, {"database": "ok"})
        assert counts(app) == before
        assert signed_in.get("/account").status_code == 200
        assert forms.register().status_code == 302
        assert counts(app)["users"] == before["users"] + 1
    finally:
        dispose(app)


# -- the database failing in the middle of a request ------------------------------------------


class Fault:
    """Make every statement on an engine fail from a chosen moment, as when the database
    goes away in the middle of a request (SQLAlchemy sees the driver's own error)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.down = False
        self._trigger = ""
        self._armed = False
        self._commit_trigger = False

    def fail_from(self, statement_prefix: str) -> None:
        """The database goes away at the first statement starting with ``statement_prefix``."""
        self._trigger, self._commit_trigger = statement_prefix.upper(), False

    def fail_after_commit_of(self, statement_prefix: str) -> None:
        """The database goes away right after the transaction holding that statement commits."""
        self._trigger, self._commit_trigger = statement_prefix.upper(), True

    def recover(self) -> None:
        self.down, self._armed, self._trigger = False, False, ""

    def before_cursor_execute(self, *args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        if self._trigger and statement.startswith(self._trigger):
            if self._commit_trigger:
                self._armed = True
            else:
                self.down = True
        if self.down:
            raise sqlite3.OperationalError("disk I/O error")

    def commit(self, *args: Any) -> None:
        if self._armed:
            self.down = True


@pytest.fixture
def inject() -> Iterator[Callable[[Flask], Fault]]:
    """Attach a Fault to an app's engine; detached after the test."""
    attached: list[Fault] = []

    def attach(app: Flask) -> Fault:
        with app.app_context():
            engine = get_state(app).db.engine
        injected = Fault(engine)
        sa.event.listen(engine, "before_cursor_execute", injected.before_cursor_execute)
        sa.event.listen(engine, "commit", injected.commit)
        attached.append(injected)
        return injected

    yield attach
    for injected in attached:
        sa.event.remove(injected.engine, "before_cursor_execute", injected.before_cursor_execute)
        sa.event.remove(injected.engine, "commit", injected.commit)


def test_register_failing_at_the_insert_writes_nothing_and_the_next_request_works(
    make_demo_app: AppFactory, inject: Callable[[Flask], Fault]
) -> None:
    app = make_demo_app(mail=False)
    injected = inject(app)
    forms = Forms(app.test_client())
    injected.fail_from("INSERT INTO users")
    assert_unavailable(forms.register(), "POST /register, database gone at the insert")
    injected.recover()
    assert counts(app) == {"users": 0, "user_sessions": 0, "audit_events": 0}
    # The failed transaction was rolled back: the same app and browser carry on.
    assert forms.register().status_code == 302
    assert counts(app)["users"] == 1


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_register_interrupted_after_the_account_commit_leaves_a_whole_account(
    make_demo_app: AppFactory, inject: Callable[[Flask], Fault], mode: str
) -> None:
    """Each write is atomic; a request cut short keeps what it finished, whole and usable."""
    app = make_demo_app(mail=False, PORTCULLIS_EMAIL_VERIFICATION=mode)
    injected = inject(app)
    forms = Forms(app.test_client())
    injected.fail_after_commit_of("INSERT INTO users")
    response = forms.register()
    injected.recover()
    if response.status_code != 503:  # required mode needs no second write
        assert response.status_code in (200, 302)
    else:
        assert_unavailable(response, "POST /register, database gone after the account's commit")
        assert "may not have finished" in response.get_data(as_text=True)
    assert counts(app)["users"] == 1
    with app.app_context():
        user = get_state(app).accounts.get_by_identity("newcomer")
        assert user is not None
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2")


def test_sign_in_interrupted_after_the_session_commit_is_harmless(
    make_demo_app: AppFactory, inject: Callable[[Flask], Fault]
) -> None:
    """The browser holds no id for a row left behind; the next request carries on."""
    app = make_demo_app(mail=False)
    injected = inject(app)
    make_user(app)
    client = app.test_client()
    token = csrf_token(client, "/login")
    injected.fail_after_commit_of("INSERT INTO user_sessions")
    response = client.post(
        "/login", data={"csrf_token": token, "identity": "ada", "password": PASSWORD}
    )
    injected.recover()
    if response.status_code == 503:
        assert_unavailable(response, "POST /login, database gone after the session's commit")
        assert client.get("/account").status_code == 302
    assert login(app.test_client()).status_code == 302
