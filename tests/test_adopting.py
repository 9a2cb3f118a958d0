"""An existing app adopts Portcullis exactly as docs/adopting.md says, and keeps every row.

``examples/notes`` is a tutorial-shaped app (its own ``users`` with Werkzeug and
bcrypt hashes, ``notes`` whose foreign key cascades, Flask-Migrate) that has
adopted Portcullis. Each test takes a copy with only the tutorial's own
migration, fills the tutorial's tables with rows, then runs the documented
steps as a developer would, in a shell: ``flask db migrate``, ``flask db
upgrade``. Then the old users sign in over HTTP with their old passwords,
and a new user signs up with the app's extra field.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from .databases import Server
from .servers import (
    AppServer,
    Browser,
    launch,
    wait_until_healthy,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notes"
TUTORIAL_REVISION = "d8a147529d1f"  # the app's own first migration, before Portcullis
COMMAND_TIMEOUT = 120


@dataclass(frozen=True)
class OldUser:
    id: int
    username: str
    email: str
    password: str
    hash: str


def _werkzeug(password: str, method: str = "scrypt") -> str:
    return generate_password_hash(password, method=method)


OLD_USERS = (
    OldUser(
        1, "alice", "alice@example.com", "alice's old password", _werkzeug("alice's old password")
    ),
    OldUser(
        2, "bob", "Bob@Example.com", "bob's old password", _werkzeug("bob's old password", "pbkdf2")
    ),
    OldUser(
        3,
        "carol",
        "carol@example.com",
        "carol's old password",
        bcrypt.hashpw(b"carol's old password", bcrypt.gensalt(rounds=4)).decode(),
    ),
    # Two accounts the tutorial's unique index let stand: one name in full-width letters.
    OldUser(4, "Dave", "dave@example.com", "dave's old password", _werkzeug("dave's old password")),
    OldUser(
        5,
        "\uff44\uff41\uff56\uff45",
        "dave.two@example.com",
        "the other dave",
        _werkzeug("the other dave"),
    ),
)
NOTES_PER_USER = 3


# -- the app, as a developer has it --------------------------------------------------------


@dataclass
class Checkout:
    """A copy of the example app with only its pre-Portcullis history, on ``database``."""

    folder: Path
    database: str

    def flask(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``flask --app notes:create_app ARGS`` in the app's folder, as in a shell."""
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "notes:create_app", *args],
            cwd=self.folder,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"flask {' '.join(args)} failed:\n{result.stderr}"
        return result

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PORTCULLIS_"))}
        env.update(DATABASE_URL=self.database, SECRET_KEY="notes-" + "s" * 40)
        return env

    def serve(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "notes:create_app",
            "run",
            "--host=127.0.0.1",
            f"--port={port}",
            "--no-reload",
            "--no-debugger",
        ]


def checkout(tmp_path: Path, database: str) -> Checkout:
    folder = tmp_path / "notes"
    shutil.copytree(
        EXAMPLE,
        folder,
        ignore=shutil.ignore_patterns("__pycache__", "*.db", "instance", ".pytest_cache"),
    )
    for migration in (folder / "migrations" / "versions").glob("*.py"):
        if not migration.name.startswith(TUTORIAL_REVISION):
            migration.unlink()  # made by the adoption this test replays
    return Checkout(folder, database)


@pytest.fixture
def database(server: Server) -> str:
    """An empty database on each backend (SQLite, PostgreSQL, MariaDB), dropped at the end."""
    return server.create_database()


def fill_the_tutorial_tables(database: str) -> set[tuple[int, int, str]]:
    """Rows as the tutorial app wrote them; return every note as (id, user id, body)."""
    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for user in OLD_USERS:
                # As the app made them: the database hands out the ids, in order.
                conn.execute(
                    sa.text(
                        "INSERT INTO users (username, email, password_hash) "
                        "VALUES (:username, :email, :hash)"
                    ),
                    {"username": user.username, "email": user.email, "hash": user.hash},
                )
                stored = conn.execute(
                    sa.text("SELECT id FROM users WHERE username = :u"), {"u": user.username}
                ).scalar_one()
                assert stored == user.id
                for n in range(NOTES_PER_USER):
                    conn.execute(
                        sa.text(
                            "INSERT INTO notes (body, created_at, user_id) "
                            "VALUES (:body, :at, :user_id)"
                        ),
                        {
                            "body": f"{user.username} note {n}",
                            "at": "2025-05-01 09:00:00",
                            "user_id": user.id,
                        },
                    )
        return notes_in(engine)
    finally:
        engine.dispose()


def notes_in(engine: sa.Engine) -> set[tuple[int, int, str]]:
    with engine.connect() as conn:
        return {
            (row.id, row.user_id, row.body)
            for row in conn.execute(sa.text("SELECT id, user_id, body FROM notes"))
        }


def users_in(engine: sa.Engine) -> dict[int, Any]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM users ORDER BY id"))
        return {row.id: row for row in rows}


@pytest.fixture
def sites() -> Iterator[list[AppServer]]:
    servers: list[AppServer] = []
    yield servers
    for site in servers:
        site.stop()


def start(app: Checkout, servers: list[AppServer]) -> AppServer:
    for _ in range(5):
        site = launch("notes", app.environment(), app.folder, command=app.serve)
        servers.append(site)
        if wait_until_healthy(site):
            return site
    pytest.fail("the notes app found no free port")


def sign_in(site: AppServer, identity: str, password: str) -> Browser:
    browser = Browser()
    token = browser.csrf_token(site, "/login")
    reply = browser.post(
        site, "/login", {"csrf_token": token, "identity": identity, "password": password}
    )
    assert reply.status == 302, f"{identity} could not sign in: {reply.status} {reply.body[:500]}"
    return browser


# -- the adoption --------------------------------------------------------------------------


def test_an_existing_app_adopts_portcullis_and_keeps_every_row(
    tmp_path: Path, database: str, sites: list[AppServer]
) -> None:
    app = checkout(tmp_path, database)
    app.flask("db", "upgrade")  # the app as it was: the tutorial's own tables
    notes_before = fill_the_tutorial_tables(database)
    assert len(notes_before) == len(OLD_USERS) * NOTES_PER_USER

    # The documented steps, as they are: no hand edits in between.
    app.flask("db", "migrate", "-m", "adopt portcullis")
    (migration,) = [
        p for p in (app.folder / "migrations" / "versions").glob("*.py") if "adopt" in p.name
    ]
    generated = migration.read_text()
    assert "adopt_users(op, 'users')" in generated
    assert "flask_portcullis.models" not in generated  # every name it uses is imported
    upgrade = app.flask("db", "upgrade")

    # The two accounts that differ only by case are both kept, and reported.
    assert re.search(r"users 4 and 5 have the same username", upgrade.stderr), upgrade.stderr

    engine = sa.create_engine(database, poolclass=sa.pool.NullPool)
    try:
        assert notes_in(engine) == notes_before, "the adoption lost or moved notes"
        users = users_in(engine)
        assert sorted(users) == [u.id for u in OLD_USERS]
        for old in OLD_USERS:
            row = users[old.id]
            assert (row.username, row.email, row.password_hash) == (
                old.username,
                old.email,
                old.hash,
            )
            assert row.active
        assert users[4].username_key == "dave"
        assert users[5].username_key == "dave#5"
        # ... and listed by the doctor from then on.
        doctor = app.flask("portcullis", "doctor", check=False).stdout
        assert "WARN  adopted duplicates" in doctor, doctor
        assert "'\uff44\uff41\uff56\uff45' <dave.two@example.com> (id 5)" in doctor

        site = start(app, sites)
        for old in OLD_USERS:
            # The later "dave" signs in by email: the name "dave" is the earlier account's.
            identity = old.email if old.id == 5 else old.username
            browser = sign_in(site, identity, old.password)
            page = browser.get(site, "/")
            assert page.status == 200
            for n in range(NOTES_PER_USER):
                assert f"{old.username} note {n}" in page.body
        users = users_in(engine)
        for old in OLD_USERS:  # rehashed on that sign-in, from the old format to argon2id
            assert users[old.id].password_hash.startswith("$argon2id$")

        # A new user signs up, with the field the app added to the form.
        browser = Browser()
        token = browser.csrf_token(site, "/register")
        reply = browser.post(
            site,
            "/register",
            {
                "csrf_token": token,
                "username": "erin",
                "email": "erin@example.com",
                "password": "erin's brand new password",
                "password_confirm": "erin's brand new password",
                "display_name": "Erin E.",
            },
        )
        assert reply.status == 302, reply.body[:1000]
        (erin,) = [u for u in users_in(engine).values() if u.username == "erin"]
        assert erin.display_name == "Erin E."
        assert erin.username_key == "erin"
        assert "Erin E.'s notes" in browser.get(site, "/").body
        # Outside migrations foreign keys are on (SQLite too): deleting an account takes
        # its notes with it, as the app's ON DELETE CASCADE says.
        app.flask("users", "delete", "alice", "--yes")
        assert notes_in(engine) == {note for note in notes_before if note[1] != 1}
    finally:
        engine.dispose()
