"""A host app that keeps its own ``db``, its own ``User`` columns and its own layout."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, render_template
from flask_login import LoginManager, current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_portcullis import Portcullis, UserMixin


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Customer(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "customers"
    shoe_size: Mapped[int | None] = mapped_column(default=None)


class Order(db.Model):  # type: ignore[name-defined,misc]
    """A table of the host's own, beside the Portcullis ones."""

    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str]


portcullis = Portcullis(db=db, user_model=Customer)
login_manager = LoginManager()


def create_host_app(database_uri: str, **config: object) -> Flask:
    app = Flask(__name__, template_folder=str(Path(__file__).parent / "host_templates"))
    app.config.update(
        SECRET_KEY="host-secret-" + "y" * 32,
        SQLALCHEMY_DATABASE_URI=database_uri,
        PORTCULLIS_ARGON2_TIME_COST=1,
        PORTCULLIS_ARGON2_MEMORY_COST=64,
        TESTING=True,
        **config,
    )
    db.init_app(app)
    login_manager.init_app(app)  # the host set up Flask-Login before Portcullis
    portcullis.init_app(app)

    @app.route("/")
    def home() -> str:
        return render_template("home.html")

    @app.route("/shoes")
    @login_required  # type: ignore[untyped-decorator]  # Flask-Login ships no types
    def shoes() -> str:
        return f"{current_user.username} wears size {current_user.shoe_size}"

    @app.post("/shoes/<int:size>")
    @login_required  # type: ignore[untyped-decorator]
    def new_shoes(size: int) -> str:
        # Writes through current_user, as many apps do: they must reach the database.
        current_user.shoe_size = size
        db.session.commit()
        return "ok"

    with app.app_context():
        db.create_all()
    return app
