"""The shipped migrations, the services and concurrent sign-ups on every supported database.

Each backend is a parameter of the session-scoped ``server`` fixture:

- ``sqlite``: files in a temporary folder (always runs);
- ``postgresql``: ``postgresql+psycopg://postgres@127.0.0.1:5432`` (marked ``services``);
- ``mariadb``: ``mysql+pymysql://root@127.0.0.1:3306`` (marked ``services``).

The servers are shared, so this run creates its own databases, named
``portcullis_<run id>_<n>``, and drops them when the backend's tests are done,
whether they passed or not. A server that does not answer skips its tests (or
fails them under ``PORTCULLIS_REQUIRE_SERVICES=1``; see ``services.py``).

Most tests share one migrated database per backend (``app``), emptied after
each test; the migration tests each get a brand-new database (``fresh_app``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pprint import pformat

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from werkzeug.test import TestResponse

from flask_portcullis import InvalidCredentials, get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.dashboard import Dashboard
from flask_portcullis.demo import MIGRATIONS
from flask_portcullis.exceptions import RefreshTokenReused, TokenInvalid
from flask_portcullis.identity import identity_key, username_skeleton
from flask_portcullis.models import UTCDateTime

from .conftest import PASSWORD, FakeClock, csrf_token, dispose, make_app, submit
from .databases import Server
from .doctor_report import run_doctor
from .rows import count

PORTCULLIS_TABLES = {
    "users",
    "roles",
    "permissions",
    "user_sessions",
    "user_roles",
    "role_permissions",
    "audit_events",
    "refresh_tokens",
    "two_factor",
    "recovery_codes",
    "passkeys",
    "trusted_devices",
    "provider_links",
    "invitations",
}
# Children before parents, so the foreign keys never object (MariaDB checks them per row).
CLEANUP_ORDER = (
    "invitations",
    "provider_links",
    "trusted_devices",
    "refresh_tokens",
    "two_factor",
    "recovery_codes",
    "passkeys",
    "user_sessions",
    "user_roles",
    "role_permissions",
    "users",
    "permissions",
    "audit_events",
)
USERNAME_TAKEN = "That username is already taken."
LOOK_ALIKE = "That username is too like one that is already taken."
EMAIL_TAKEN = "That email address cannot be used for a new account."
RACERS = 4
BARRIER_TIMEOUT = 20.0


# -- the backend's app ---------------------------------------------------------


@pytest.fixture(scope="session")
def session_clock() -> FakeClock:
    return FakeClock()


def _build_app(server: Server, url: str, clock: FakeClock | None = None) -> Flask:
    folder = server.folder / f"app-{secrets.token_hex(4)}"
    return make_app(folder, clock, migrate=False, SQLALCHEMY_DATABASE_URI=url)


@pytest.fixture(scope="session")
def migrated_app(server: Server, session_clock: FakeClock) -> Iterator[Flask]:
    """The demo app on one database per backend, upgraded once with the shipped migrations."""
    app = _build_app(server, server.create_database(), session_clock)
    try:
        with app.app_context():
            flask_migrate.upgrade(directory=MIGRATIONS)
        yield app
    finally:
        dispose(app)


def _empty_tables(app: Flask) -> None:
    """Delete every row a test may have written; keep the migrations' built-in admin role."""
    with app.app_context():
        db = get_state(app).db
        db.session.remove()
        tables = db.metadata.tables
        with db.engine.begin() as conn:
            for name in CLEANUP_ORDER:
                conn.execute(tables[name].delete())
            roles = tables["roles"]
            conn.execute(roles.delete().where(roles.c.name != "admin"))


@pytest.fixture
def clock(session_clock: FakeClock) -> FakeClock:
    """The shared app's clock, set back to its start for every test."""
    session_clock.now = FakeClock().now
    return session_clock


@pytest.fixture
def app(migrated_app: Flask, clock: FakeClock) -> Iterator[Flask]:
    """The backend's migrated app with empty tables (the admin role aside)."""
    _empty_tables(migrated_app)
    try:
        yield migrated_app
    finally:
        _empty_tables(migrated_app)


@pytest.fixture
def fresh_app(server: Server) -> Iterator[Flask]:
    """The demo app on a brand-new, empty database of the backend (nothing migrated yet)."""
    app = _build_app(server, server.create_database())
    try:
        yield app
    finally:
        dispose(app)


def _db(app: Flask) -> SQLAlchemy:
    return get_state(app).db


def _table_names(app: Flask) -> set[str]:
    with app.app_context():
        return set(sa.inspect(_db(app).engine).get_table_names())


# -- migrations --------------------------------------------------------------------


def test_upgrade_creates_every_table_and_matches_the_models(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        db = _db(fresh_app)
        assert set(db.metadata.tables) == PORTCULLIS_TABLES
        flask_migrate.upgrade(directory=MIGRATIONS)
        assert _table_names(fresh_app) == PORTCULLIS_TABLES | {"alembic_version"}
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert context.get_current_revision() == "0012_invitations"
            differences = compare_metadata(context, db.metadata)
            dialect = conn.dialect.name
            stored = _constraint_names(conn, dialect)
    assert differences == [], "migrations and models disagree:\n" + pformat(differences)
    assert stored == _constraint_names(db.metadata, dialect)


def _constraint_names(source: sa.Connection | sa.MetaData, dialect: str) -> dict[str, set[str]]:
    """Each table's unique, foreign-key and (on PostgreSQL) primary-key constraint names.

    MariaDB calls every primary key PRIMARY; SQLite writes an AUTOINCREMENT key on its
    column, where it has no name."""
    kinds: tuple[type, ...] = (sa.UniqueConstraint, sa.ForeignKeyConstraint)
    if dialect == "postgresql":
        kinds += (sa.PrimaryKeyConstraint,)
    if isinstance(source, sa.MetaData):
        return {
            table.name: {str(c.name) for c in table.constraints if isinstance(c, kinds)}
            for table in source.tables.values()
        }
    inspector = sa.inspect(source)
    names: dict[str, set[str]] = {}
    for table in PORTCULLIS_TABLES:
        # MariaDB lists unique indexes (ix_...) among the unique constraints too.
        uniques = inspector.get_unique_constraints(table)
        found = {str(u["name"]) for u in uniques if not str(u["name"]).startswith("ix_")}
        found |= {str(fk["name"]) for fk in inspector.get_foreign_keys(table)}
        if sa.PrimaryKeyConstraint in kinds:
            found.add(str(inspector.get_pk_constraint(table).get("name")))
        names[table] = found
    return names


def test_downgrade_to_base_removes_every_table(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS)
        flask_migrate.downgrade(directory=MIGRATIONS, revision="base")
        assert _table_names(fresh_app) <= {"alembic_version"}
        # The history replays cleanly on the emptied database.
        flask_migrate.upgrade(directory=MIGRATIONS)
        assert _table_names(fresh_app) == PORTCULLIS_TABLES | {"alembic_version"}
        flask_migrate.downgrade(directory=MIGRATIONS, revision="base")
    assert _table_names(fresh_app) <= {"alembic_version"}


def test_admin_role_exists_after_upgrade(fresh_app: Flask) -> None:
    with fresh_app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS)
        role = get_state(fresh_app).roles.get("admin")
        assert role is not None
        assert role.description
        assert role.permissions == []
    assert count(fresh_app, "roles") == 1


# -- services round trip -----------------------------------------------------------


def _assert_utc(value: datetime | None, what: str) -> None:
    assert value is not None, f"{what} is missing"
    assert value.tzinfo is not None, f"{what} came back naive: {value!r}"
    assert value.utcoffset() == timedelta(0), f"{what} is not UTC: {value!r}"


def test_register_authenticate_and_sessions_round_trip(app: Flask, clock: FakeClock) -> None:
    state = get_state(app)
    with app.app_context():
        user = state.accounts.register("Ada.Lovelace", "Ada.Lovelace@Example.COM", PASSWORD)
        user_id = user.id
        assert user.username == "Ada.Lovelace"

    clock.advance(minutes=5)
    login_time = clock.now
    with app.app_context():  # a new database session: everything below is read back
        for identity in (
            "Ada.Lovelace",
            "ada.lovelace",
            "ADA.LOVELACE",
            "ada.lovelace@example.com",
            "ADA.LOVELACE@EXAMPLE.COM",
            "  Ada.Lovelace@example.com ",
        ):
            assert state.authenticator.authenticate(identity, PASSWORD).id == user_id, identity
        with pytest.raises(InvalidCredentials):
            state.authenticator.authenticate("ada.lovelace", PASSWORD + "!")
        with pytest.raises(InvalidCredentials):
            state.authenticator.authenticate("nobody", PASSWORD)
        session_id = state.sessions.start(
            state.accounts.get(user_id) or pytest.fail("user vanished"),
            remember=False,
            ip="203.0.113.7",
            user_agent="pytest/" + "x" * 600,
        )

    clock.advance(seconds=30)
    with app.app_context():
        active = state.sessions.resolve(session_id)
        assert active is not None
        assert active.user.id == user_id
        record = active.record
        for what, value in {
            "session created_at": record.created_at,
            "session last_seen_at": record.last_seen_at,
            "session expires_at": record.expires_at,
            "user created_at": active.user.created_at,
            "user last_login_at": active.user.last_login_at,
        }.items():
            _assert_utc(value, what)
        assert record.created_at == login_time
        assert record.last_seen_at == login_time
        assert record.expires_at == login_time + timedelta(seconds=state.settings.session_lifetime)
        assert active.user.created_at == login_time - timedelta(minutes=5)
        assert active.user.last_login_at == login_time
        assert record.id != session_id  # only the digest is stored
        [stored] = state.sessions.list_for(user_id)
        assert stored.id == record.id
        assert stored.ip == "203.0.113.7"
        assert len(stored.user_agent) == 512

        state.sessions.end(session_id)
        assert state.sessions.resolve(session_id) is None
    assert count(app, "user_sessions", user_id=user_id) == 0

    with app.app_context():
        user = state.accounts.get(user_id) or pytest.fail("user vanished")
        kept = [
            state.sessions.start(user, remember=remember, ip="198.51.100.1", user_agent="ua")
            for remember in (False, True)
        ]
    assert count(app, "user_sessions", user_id=user_id) == 2
    with app.app_context():
        user = state.accounts.get(user_id) or pytest.fail("user vanished")
        state.accounts.delete(user)
    assert count(app, "users") == 0
    assert count(app, "user_sessions") == 0
    with app.app_context():
        assert all(state.sessions.resolve(sid) is None for sid in kept)
        assert state.accounts.get_by_identity("ada.lovelace") is None


def test_timestamps_stored_as_naive_utc_whatever_the_zone(app: Flask, clock: FakeClock) -> None:
    # A non-UTC aware time goes in; the same instant comes back, labelled UTC.
    clock.now = datetime(2026, 6, 1, 16, 30, tzinfo=timezone(timedelta(hours=2)))
    state = get_state(app)
    with app.app_context():
        user_id = state.accounts.register("grace", "grace@example.com", PASSWORD).id
    with app.app_context():
        user = state.accounts.get(user_id)
        assert user is not None
        _assert_utc(user.created_at, "user created_at")
        assert user.created_at == datetime(2026, 6, 1, 14, 30, tzinfo=UTC)
        db = _db(app)
        raw = db.session.execute(
            sa.select(sa.cast(db.metadata.tables["users"].c.created_at, sa.String))
        ).scalar_one()
        assert raw.startswith("2026-06-01 14:30:00"), raw
        with pytest.raises(ValueError, match="aware"):
            UTCDateTime().process_bind_param(datetime(2026, 1, 1), db.engine.dialect)


def test_deleting_a_user_row_cascades_to_sessions_and_roles(app: Flask) -> None:
    """A host app deleting its own user row (no AccountService) must not leave sessions behind."""
    state = get_state(app)
    User = state.models.User
    with app.app_context():
        boss = state.accounts.register("boss", "boss@example.com", PASSWORD)
        state.roles.add_to_user(boss, "admin")
        boss_id = boss.id
        session_id = state.sessions.start(boss, remember=True, ip="192.0.2.1", user_agent="ua")
        state.db.session.execute(sa.delete(User).where(User.id == boss_id))
        state.db.session.commit()
    assert count(app, "user_sessions", user_id=boss_id) == 0
    assert count(app, "user_roles", user_id=boss_id) == 0
    with app.app_context():
        newcomer = state.accounts.register("newcomer", "newcomer@example.com", PASSWORD)
        assert not newcomer.has_role("admin")
        assert state.sessions.resolve(session_id) is None


def test_refresh_token_reuse_and_revocation_end_the_family(app: Flask) -> None:
    """Ending an API session deletes its user_sessions row and, in the same transaction, the
    refresh_tokens of its family (no foreign key since 0011: a session may live in Redis),
    on every backend."""
    state = get_state(app)
    with app.app_context():
        ada = state.accounts.register("ada", "ada@example.com", PASSWORD)
        ada_id = ada.id
        first = state.refresh_tokens.start(ada, ip="192.0.2.1", user_agent="ua")
        other = state.refresh_tokens.start(ada, ip="192.0.2.2", user_agent="ua")
        second = state.refresh_tokens.rotate(first.refresh_token)
        assert second.session == first.session
    assert count(app, "refresh_tokens", session_id=first.session) == 2  # the used one stays

    with app.app_context(), pytest.raises(RefreshTokenReused) as reused:
        state.refresh_tokens.rotate(first.refresh_token)  # a copy of the used token
    assert reused.value.user_id == ada_id
    assert count(app, "user_sessions", id=first.session) == 0
    assert count(app, "refresh_tokens", session_id=first.session) == 0
    with app.app_context(), pytest.raises(TokenInvalid):
        state.refresh_tokens.rotate(second.refresh_token)  # the family ended with it

    # Another family of the same user is untouched, and revoking it ends it the same way.
    assert count(app, "refresh_tokens", session_id=other.session) == 1
    with app.app_context():
        assert state.refresh_tokens.revoke(other.refresh_token) == ada_id
        assert state.refresh_tokens.revoke(other.refresh_token) is None
    assert count(app, "user_sessions", user_id=ada_id) == 0
    assert count(app, "refresh_tokens") == 0


def test_timestamps_keep_microseconds(app: Flask, clock: FakeClock) -> None:
    clock.now = datetime(2026, 1, 1, 12, 0, 0, 987654, tzinfo=UTC)
    state = get_state(app)
    with app.app_context():
        user = state.accounts.register("grace", "grace@example.com", PASSWORD)
        session_id = state.sessions.start(user, remember=False, ip="", user_agent="")
    with app.app_context():
        active = state.sessions.resolve(session_id)
        assert active is not None
        assert active.user.created_at == clock.now
        assert active.record.last_seen_at == clock.now


# -- uniqueness --------------------------------------------------------------------


def _register_form(username: str, email: str) -> dict[str, str]:
    return {
        "username": username,
        "email": email,
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }


def test_username_and_email_are_unique_case_insensitively(app: Flask) -> None:
    first = submit(app.test_client(), "/register", _register_form("Ada", "ada@example.com"))
    assert first.status_code == 302, first.get_data(as_text=True)

    for username, email, message in (
        ("ADA", "other@example.com", USERNAME_TAKEN),
        ("ada", "other@example.com", USERNAME_TAKEN),
        ("other", "ADA@EXAMPLE.COM", EMAIL_TAKEN),
        ("other", "Ada@Example.com", EMAIL_TAKEN),
    ):
        page = submit(app.test_client(), "/register", _register_form(username, email))
        assert page.status_code == 422, (username, email, page.status_code)
        assert message in page.get_data(as_text=True), (username, email)
    assert count(app, "users") == 1


# -- concurrent registration -------------------------------------------------------


def _race(app: Flask, forms: list[dict[str, str]]) -> list[TestResponse]:
    """POST every form to /register from its own client, all released by one barrier."""
    clients = [app.test_client() for _ in forms]
    tokens = [csrf_token(client, "/register") for client in clients]
    start = threading.Barrier(len(forms))

    def run(i: int) -> TestResponse:
        start.wait(timeout=BARRIER_TIMEOUT)
        return clients[i].post("/register", data={"csrf_token": tokens[i], **forms[i]})

    with ThreadPoolExecutor(max_workers=len(forms)) as pool:
        futures = [pool.submit(run, i) for i in range(len(forms))]
        # TESTING propagates exceptions: a would-be 500 is raised here, with its traceback.
        return [future.result(timeout=60) for future in futures]


@pytest.fixture(params=["together", "past-the-check"])
def race_mode(request: pytest.FixtureRequest, app: Flask, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the sign-ups collide.

    ``together``: released at once by a barrier, with no help (as in production).
    ``past-the-check``: additionally held right after the service's "is it taken?"
    query (at password hashing) until every racer has passed it, so each INSERT
    is sure to meet the unique index: the database, not the pre-check, decides.
    """
    mode: str = request.param
    if mode == "past-the-check":
        hashing = get_state(app).accounts.hashing
        real_hash = hashing.hash
        checked = threading.Barrier(RACERS)

        def hash_when_all_checked(password: str) -> str:
            checked.wait(timeout=BARRIER_TIMEOUT)
            return real_hash(password)

        monkeypatch.setattr(hashing, "hash", hash_when_all_checked)
    return mode


def _assert_one_winner(responses: list[TestResponse], message: str) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [302] + [422] * (len(responses) - 1), statuses
    for response in responses:
        if response.status_code == 422:
            page = response.get_data(as_text=True)
            assert message in page, page


def test_concurrent_registration_of_one_username(app: Flask, race_mode: str) -> None:
    forms = [_register_form("racer", f"racer{i}@example.com") for i in range(RACERS)]
    _assert_one_winner(_race(app, forms), USERNAME_TAKEN)
    assert count(app, "users") == 1
    assert count(app, "users", username_key="racer") == 1
    assert count(app, "user_sessions") == 1


def test_concurrent_registration_of_look_alike_usernames(app: Flask, race_mode: str) -> None:
    """Four names with one skeleton ("1" and "l" look alike): the unique index decides."""
    names = ["bill", "bi11", "bil1", "bi1l"]
    forms = [_register_form(name, f"racer{i}@example.com") for i, name in enumerate(names)]
    _assert_one_winner(_race(app, forms), LOOK_ALIKE)
    assert count(app, "users") == 1
    assert count(app, "users", username_skeleton="bill") == 1


def test_concurrent_registration_of_one_email(app: Flask, race_mode: str) -> None:
    forms = [_register_form(f"racer{i}", "Racer@example.com") for i in range(RACERS)]
    _assert_one_winner(_race(app, forms), EMAIL_TAKEN)
    assert count(app, "users") == 1
    assert count(app, "users", email_key="racer@example.com") == 1
    assert count(app, "user_sessions") == 1


def test_control_characters_never_reach_the_database(app: Flask) -> None:
    """PostgreSQL refuses NUL in text: such input must be a clean refusal on every backend."""
    with app.app_context():
        state = get_state(app)
        state.accounts.register("ada", "ada@example.com", PASSWORD)
        assert state.accounts.get_by_identity("ada\x00") is None
        assert state.accounts.search("ad\x00") == []
    client = app.test_client()
    response = submit(client, "/login", {"identity": "ada\x00", "password": PASSWORD})
    assert response.status_code == 422
    response = submit(client, "/register", _register_form("nul\x00user", "nul\x00@example.com"))
    assert response.status_code == 422


def test_accented_identities_are_distinct_accounts(app: Flask) -> None:
    """MariaDB's default collation ignores accents; the keys compare byte for byte instead."""
    with app.app_context():
        state = get_state(app)
        jose = state.accounts.register("jose", "jose@example.com", PASSWORD)
        jose_accented = state.accounts.register("josé", "josé@example.com", PASSWORD)
        assert jose.id != jose_accented.id
        found = state.accounts.get_by_identity("josé")
        assert found is not None
        assert found.id == jose_accented.id
        with pytest.raises(InvalidCredentials):
            state.authenticator.authenticate("josé", "not the password")


@pytest.mark.parametrize(
    ("username", "email"),
    [
        # 64 octets of local part, casefolded to 96 characters, and a long domain. (A username's
        # key is recomposed after case folding, RFC 8265: "\u0390" * 32 keeps 32 characters.)
        ("short-key", "\u0390" * 32 + "@" + "a" * 60 + "." + "b" * 60 + "." + "c" * 50 + ".com"),
    ],
    ids=["email"],
)
def test_identities_whose_key_would_overflow_are_form_errors(
    app: Flask, username: str, email: str
) -> None:
    response = submit(app.test_client(), "/register", _register_form(username, email))
    assert response.status_code == 422
    assert "too long" in response.get_data(as_text=True)
    assert count(app, "users") == 0


# -- look-alike usernames ----------------------------------------------------------------------


def test_look_alike_usernames_are_refused(app: Flask) -> None:
    """The issue's case ("scanner" with a Cyrillic "a") and a whole-script look-alike."""
    first = submit(app.test_client(), "/register", _register_form("scanner", "s@example.com"))
    assert first.status_code == 302, first.get_data(as_text=True)
    forged = submit(app.test_client(), "/register", _register_form("sc\u0430nner", "f@example.com"))
    assert forged.status_code == 422
    assert "this name mixes Latin and Cyrillic" in forged.get_data(as_text=True)

    poe = submit(app.test_client(), "/register", _register_form("poe", "poe@example.com"))
    assert poe.status_code == 302
    cyrillic = _register_form("\u0440\u043e\u0435", "c@example.com")
    page = submit(app.test_client(), "/register", cyrillic)
    assert page.status_code == 422
    assert LOOK_ALIKE in page.get_data(as_text=True)
    assert count(app, "users") == 2


OLD_USERS = [
    # (username, username_key as the code before 0007 stored it: NFKC and casefold)
    ("scanner", "scanner"),
    ("sc\u0430nner", "sc\u0430nner"),  # registered beside it before 0007
    ("\u0390\u0390\u0390", identity_key("\u0390\u0390\u0390")),  # 9 characters, not NFC
    ("gone", "gone"),  # deleted before the upgrade: its id is never handed out again
]


def test_migration_keeps_and_reports_existing_look_alikes(
    fresh_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app = fresh_app
    state = get_state(app)
    hashed = state.accounts.hashing.hash(PASSWORD)
    users = sa.table(
        "users",
        *(sa.column(name) for name in ("id", "username", "username_key", "email", "email_key")),
        *(sa.column(name) for name in ("password_hash", "active", "created_at")),
    )
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS, revision="0006_audit_sign_in_index")
        with state.db.engine.begin() as conn:
            for number, (username, key) in enumerate(OLD_USERS):
                conn.execute(
                    users.insert().values(
                        username=username,
                        username_key=key,
                        email=f"user{number}@example.com",
                        email_key=f"user{number}@example.com",
                        password_hash=hashed,
                        active=True,
                        created_at=datetime(2026, 1, 1),
                    )
                )
            ids = dict(conn.execute(sa.select(users.c.username, users.c.id)).all())
            conn.execute(users.delete().where(users.c.username == "gone"))
            roles, user_roles = (
                sa.table("roles", sa.column("id"), sa.column("name")),
                sa.table("user_roles", sa.column("user_id"), sa.column("role_id")),
            )
            admin = conn.execute(sa.select(roles.c.id).where(roles.c.name == "admin")).scalar()
            conn.execute(user_roles.insert().values(user_id=ids["scanner"], role_id=admin))
        with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
            flask_migrate.upgrade(directory=MIGRATIONS)

    # Reported: both names, and what to run next.
    reports = [r.getMessage() for r in caplog.records if r.name == "alembic.runtime.migration"]
    assert any(
        "'sc\u0430nner'" in report and "'scanner'" in report and "doctor" in report
        for report in reports
    ), reports
    # Kept: both accounts, the later one's skeleton set apart by its id.
    with app.app_context():
        User = state.models.User
        rows = {u.username: u for u in state.db.session.scalars(sa.select(User))}
        assert set(rows) == {"scanner", "sc\u0430nner", "\u0390\u0390\u0390"}
        assert rows["scanner"].username_skeleton == "scanner"
        assert rows["scanner"].has_role("admin")  # rows that point at users are untouched
        forged_id = ids["sc\u0430nner"]
        assert rows["sc\u0430nner"].username_skeleton == f"scanner#{forged_id}"
        assert rows["\u0390\u0390\u0390"].username_key == "\u0390\u0390\u0390"  # recomposed
        assert rows["\u0390\u0390\u0390"].username_skeleton == username_skeleton(
            "\u0390\u0390\u0390"
        )
        # Each still signs in by its name.
        for username in rows:
            assert state.authenticator.authenticate(username, PASSWORD).id == ids[username]
        state.db.session.remove()

    # Listed by the doctor, by name and id.
    finding = run_doctor(app).findings["look-alike usernames"]
    assert finding.status == "WARN"
    assert f"'sc\u0430nner' (id {forged_id}) looks like 'scanner' (id {ids['scanner']})" in (
        finding.message
    )

    # A third look-alike is refused; a new account gets a new id, never the deleted one's.
    whole = submit(
        app.test_client(), "/register", _register_form("\u0455\u0441\u0430nn\u0435r", "x@e.com")
    )
    assert whole.status_code == 422
    with app.app_context():
        newcomer = state.accounts.register("newcomer", "newcomer@example.com", PASSWORD)
        assert newcomer.id > ids["gone"]
        state.db.session.remove()

    # Downgrading keeps every account and the keys the older code looks names up by.
    with app.app_context():
        flask_migrate.downgrade(directory=MIGRATIONS, revision="0006_audit_sign_in_index")
        with state.db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("users")}
            assert "username_skeleton" not in columns
            keys = dict(conn.execute(sa.select(users.c.username, users.c.username_key)).all())
    assert keys == {
        "scanner": "scanner",
        "sc\u0430nner": "sc\u0430nner",
        "\u0390\u0390\u0390": identity_key("\u0390\u0390\u0390"),
        "newcomer": "newcomer",
    }


def test_the_dashboard_figures_on_every_backend(app: Flask) -> None:
    """The console's aggregate queries (counts, per-day GROUP BY, failures by reason) are SQL
    every backend runs: MariaDB has no aggregate FILTER, and dates come back differently."""
    state = get_state(app)
    with app.app_context():
        ada = state.accounts.register("ada", "ada@example.com", PASSWORD)
        state.accounts.register("bob", "bob@example.com", PASSWORD)
        state.accounts.set_active(ada, False)
        state.audit.record(Event.SIGN_IN_FAILED, user_id=ada.id, reason="password")
        state.audit.record(Event.SIGN_IN, user_id=ada.id)
        state.audit.record(Event.THROTTLED)
        figures = Dashboard(state.db.session, state.models, state.clock).figures(
            sessions_in_sql=True
        )
    assert (figures.users, figures.active_users, figures.sessions) == (2, 1, 0)
    assert (figures.sign_ins_today, figures.failures_today, figures.throttled_today) == (1, 1, 1)
    assert figures.per_day[str(Event.SIGN_IN)][-1] == 1
    assert figures.failure_reasons == [("password", 1)]
    assert figures.second_factor_users == 0
