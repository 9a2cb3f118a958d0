"""The demo site: ``flask --app flask_portcullis.demo run``.

Everything is configurable through ``FLASK_*`` environment variables
(``app.config.from_prefixed_env``); with none set it runs on SQLite in
``./instance`` and keeps a generated secret key there.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, render_template
from flask.typing import ResponseReturnValue
from flask_migrate import Migrate
from flask_wtf import CSRFProtect
from sqlalchemy import Engine, event
from werkzeug.exceptions import HTTPException

from .. import MIGRATIONS, Portcullis
from ..clock import Clock

logger = logging.getLogger("flask_portcullis.demo")

portcullis = Portcullis()
db = portcullis.db
migrate = Migrate()
csrf = CSRFProtect()
__all__ = ["MIGRATIONS", "create_app", "db", "portcullis"]


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    instance_path: str | None = None,
    clock: Clock | None = None,
) -> Flask:
    """Build the demo app (settings: defaults < FLASK_* environment < ``test_config``)."""
    instance = instance_path or os.environ.get("PORTCULLIS_INSTANCE_PATH") or "instance"
    app = Flask(__name__, instance_path=os.path.abspath(instance))
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///portcullis.db",
        PORTCULLIS_SITE_NAME="Portcullis demo",
        PORTCULLIS_POST_LOGIN_VIEW="index",
        PORTCULLIS_POST_LOGOUT_VIEW="index",
    )
    app.config.from_prefixed_env()
    if test_config:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(Path(app.instance_path))

    csrf.init_app(app)  # before Portcullis, which exempts its bearer-token API from it
    portcullis.init_app(app, clock=clock)
    migrate.init_app(app, db, directory=MIGRATIONS)
    with app.app_context():
        for engine in db.engines.values():
            write_ahead_log(engine)

    @app.route("/")
    def index() -> ResponseReturnValue:
        return render_template("index.html")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        return render_template("portcullis/error.html", error=error), error.code or 500

    return app


def write_ahead_log(engine: Engine) -> None:
    """Run SQLite in WAL mode: readers never wait for the writer, and a commit is not a
    wait for the disk (synchronous=NORMAL: a power cut may lose the last commits, but
    never corrupts the file). Twice the sign-ins per second in bench/; other databases
    are left alone."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def wal(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def instance_secret_key(instance: Path) -> str:
    """Return the secret key kept in the instance folder, making it (mode 0600) the first time.

    The key is written to a private temporary file and linked into place, so
    several workers starting at once all read the same, complete key.
    """
    path = instance / "secret_key"
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=instance, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            os.link(temporary, path)
            logger.warning("No SECRET_KEY was set: generated one in %s (mode 0600).", path)
        except FileExistsError:
            pass  # another worker won the race; use its key
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key: delete it to make a new one.")
    return key
