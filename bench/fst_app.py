"""A minimal Flask-Security-Too app, as its quick-start builds it, for the comparison.

Runs in its own venv (``bench/.venv-fst``, from ``bench/requirements-fst.txt``)
so its pins never touch Portcullis's. Defaults kept: argon2 hashes (via
libpass), Flask-WTF CSRF on its forms, its own login and register templates;
registration on, mail off (no mail server in a benchmark). The database is
``BENCH_DATABASE_URI``. ``python fst_app.py init`` makes the schema and the
bench user; ``python fst_app.py hashtime`` prints the cost of one password
check as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from flask_security import (
    Security,
    SQLAlchemyUserDatastore,
    auth_required,
    current_user,
    hash_password,
    verify_password,
)
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy
from jinja2 import DictLoader

TEMPLATES = {
    "account.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your account</title></head>
<body><nav><a href="{{ url_for('account') }}">{{ current_user.email }}</a>
<a href="{{ url_for('security.logout') }}">Sign out</a></nav>
{% with messages = get_flashed_messages() %}
{% for m in messages %}<p>{{ m }}</p>{% endfor %}
{% endwith %}
<main><h1>Your account</h1>
<dl><dt>Username</dt><dd>{{ user.username }}</dd><dt>Email</dt><dd>{{ user.email }}</dd></dl>
</main></body></html>""",
}

db = SQLAlchemy()
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
    pass


class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
    pass


datastore = SQLAlchemyUserDatastore(db, User, Role)


def create_app() -> Flask:
    """Build the app from the BENCH_* environment the driver sets."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ["BENCH_SECRET_KEY"],
        SECURITY_PASSWORD_SALT=os.environ["BENCH_SECRET_KEY"][:32],
        SQLALCHEMY_DATABASE_URI=os.environ["BENCH_DATABASE_URI"],
        SECURITY_REGISTERABLE=True,
        SECURITY_SEND_REGISTER_EMAIL=False,
        # No DNS lookups of the address's domain: the bench machine has no resolver to ask.
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False},
        SECURITY_POST_LOGIN_VIEW="/account",
        SECURITY_POST_REGISTER_VIEW="/account",
    )
    app.jinja_loader = DictLoader(TEMPLATES)
    db.init_app(app)
    Security(app, datastore)

    @app.route("/account")
    @auth_required()
    def account() -> ResponseReturnValue:
        return render_template("account.html", user=current_user)

    return app


def init(username: str, email: str, password: str) -> None:
    """Create the schema and one user."""
    with create_app().app_context():
        db.create_all()
        datastore.create_user(username=username, email=email, password=hash_password(password))
        db.session.commit()


def hashtime(rounds: int) -> dict[str, float | str]:
    """Time the configured password check (HMAC pre-hash and argon2, as at sign-in)."""
    with create_app().app_context():
        encoded = hash_password("correct horse battery staple")
        verify_password("correct horse battery staple", encoded)  # warm up
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            verify_password("correct horse battery staple", encoded)
        return {
            "hasher": encoded.rsplit("$", 2)[0],
            "cpu_ms": (time.process_time() - cpu) * 1000 / rounds,
            "wall_ms": (time.perf_counter() - wall) * 1000 / rounds,
        }


if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(*sys.argv[2:5])
    elif sys.argv[1] == "hashtime":
        print(json.dumps(hashtime(int(sys.argv[2]))))
