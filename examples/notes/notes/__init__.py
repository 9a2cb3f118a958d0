"""A small notes app in the shape of the Flask tutorials, with Portcullis for its accounts."""

from __future__ import annotations

import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from flask_portcullis import NAMING_CONVENTION


class Base(DeclarativeBase):
    # Names for every constraint, so batch migrations (SQLite) can alter them.
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()  # every form of the app checks its token, as Portcullis's pages do


def create_app(config: dict[str, object] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "notes-dev-secret-change-me"),
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///notes.db"),
        PORTCULLIS_SITE_NAME="Notes",
        PORTCULLIS_POST_LOGIN_VIEW="notes.index",
    )
    app.config.update(config or {})
    db.init_app(app)
    migrate.init_app(app, db)
    csrf.init_app(app)

    from . import views
    from .accounts import portcullis

    portcullis.init_app(app)
    app.register_blueprint(views.bp)
    return app
