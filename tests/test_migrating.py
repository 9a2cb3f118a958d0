"""What Portcullis adds to a host's Alembic set-up (flask_portcullis.migrating).

The whole path (``flask db migrate`` and ``upgrade`` on an app with rows) is
tests/test_adopting.py; these are the pieces it relies on, one at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_migrate
import sqlalchemy as sa
from alembic.autogenerate.api import AutogenContext
from alembic.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_portcullis import Portcullis, get_state
from flask_portcullis.migrating import alembic_options, render_item
from flask_portcullis.models import UTCDateTime

from .conftest import FAST_HASH, make_app


def host_app(tmp_path: Path, *, migrate_first: bool, **migrate_args: Any) -> Flask:
    tmp_path.mkdir(exist_ok=True)
    db = SQLAlchemy()
    portcullis = Portcullis(db=db)
    migrate = flask_migrate.Migrate(**migrate_args)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="host-" + "k" * 40,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'host.db'}",
        TESTING=True,
        **FAST_HASH,
    )
    db.init_app(app)
    if migrate_first:
        migrate.init_app(app, db)
        portcullis.init_app(app)
    else:
        portcullis.init_app(app)
        migrate.init_app(app, db)
    return app


def rendered(app: Flask, column_type: Any) -> tuple[str, set[str]]:
    with app.app_context():
        render = app.extensions["migrate"].configure_args["render_item"]
        engine = get_state(app).db.engine
        with engine.connect() as conn:
            context = AutogenContext(MigrationContext.configure(conn))
            return render("type", column_type, context), context.imports


def test_flask_migrate_set_up_before_or_after_portcullis_gets_the_hooks(tmp_path: Path) -> None:
    for first in (True, False):
        app = host_app(tmp_path / str(first), migrate_first=first)
        text, imports = rendered(app, UTCDateTime())
        assert text == 'sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")'
        assert imports == {"from sqlalchemy.dialects import mysql"}
        args = app.extensions["migrate"].configure_args
        assert args["process_revision_directives"] is not None


def test_the_hosts_own_hooks_keep_working(tmp_path: Path) -> None:
    seen: list[str] = []

    def host_render(type_: str, obj: Any, context: Any) -> str | bool:
        return "sa.Text()" if isinstance(obj, sa.Text) else False

    def host_directives(context: Any, revision: Any, directives: list[Any]) -> None:
        seen.append("host")

    app = host_app(
        tmp_path,
        migrate_first=True,
        render_item=host_render,
        process_revision_directives=host_directives,
    )
    assert rendered(app, sa.Text())[0] == "sa.Text()"  # the host's answer
    assert rendered(app, UTCDateTime())[0].startswith("sa.DateTime()")  # else ours
    hook = app.extensions["migrate"].configure_args["process_revision_directives"]

    class NotAutogenerating:
        class config:
            cmd_opts = None

    hook(NotAutogenerating(), None, [])
    assert seen == ["host"]


def test_other_types_render_as_alembic_does(tmp_path: Path) -> None:
    assert render_item("type", sa.String(10), None) is False  # type: ignore[arg-type]
    app = host_app(tmp_path, migrate_first=True)
    with app.app_context():
        options = alembic_options(app)
    assert options["render_item"] is render_item
    assert callable(options["process_revision_directives"])


def test_sqlite_foreign_keys_are_on_again_after_a_migration_in_the_same_process(
    tmp_path: Path,
) -> None:
    """make_app runs the shipped migrations in this process, on this engine's pool."""
    app = make_app(tmp_path)
    with app.app_context():
        db = get_state(app).db
        assert db.session.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
        user = get_state(app).accounts.register("ada", "ada@example.com", "a long password 1")
        get_state(app).roles.add_to_user(user, "admin")
        db.session.execute(sa.text("DELETE FROM users"))
        db.session.commit()
        # ON DELETE CASCADE took the role link with the user.
        assert db.session.execute(sa.text("SELECT count(*) FROM user_roles")).scalar() == 0
