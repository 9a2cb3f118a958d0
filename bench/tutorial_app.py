"""The app the "login with Flask-Login and Flask-SQLAlchemy" tutorials build: the baseline.

One ORM query per signed-in request (the ``user_loader``), Werkzeug's default
scrypt hash, Flask-WTF CSRF on the forms, templates with a shared layout. Its
database lives at ``BENCH_DATABASE_URI``. ``python tutorial_app.py init``
makes the schema and the bench user; ``python tutorial_app.py hashtime``
prints the cost of one password check as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

from flask import Flask, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import FlaskForm
from jinja2 import DictLoader
from sqlalchemy import String, or_, select
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}{% endblock %}</title></head>
<body><nav><a href="{{ url_for('index') }}">Home</a>
{% if current_user.is_authenticated %}
<a href="{{ url_for('account') }}">{{ current_user.username }}</a>
{% else %}
<a href="{{ url_for('login') }}">Sign in</a> <a href="{{ url_for('register') }}">Register</a>
{% endif %}</nav>
{% with messages = get_flashed_messages() %}
{% for m in messages %}<p>{{ m }}</p>{% endfor %}
{% endwith %}
<main>{% block content %}{% endblock %}</main></body></html>""",
    "account.html": """{% extends "base.html" %}{% block title %}Your account{% endblock %}
{% block content %}<h1>Your account</h1>
<dl><dt>Username</dt><dd>{{ user.username }}</dd><dt>Email</dt><dd>{{ user.email }}</dd></dl>
{% endblock %}""",
    "form.html": """{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}
{% block content %}<h1>{{ title }}</h1><form method="post">{{ form.csrf_token }}
{% for field in form if field.name != "csrf_token" %}<p>{{ field.label }} {{ field() }}
{% for error in field.errors %}<span>{{ error }}</span>{% endfor %}</p>{% endfor %}
<button type="submit">{{ title }}</button></form>{% endblock %}""",
}

db = SQLAlchemy()
login_manager = LoginManager()


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))


class LoginForm(FlaskForm):  # type: ignore[misc]
    identity = StringField("Username or email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Remember me")


class RegisterForm(FlaskForm):  # type: ignore[misc]
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8)])
    password_confirm = PasswordField("Repeat password", validators=[EqualTo("password")])


@login_manager.user_loader  # type: ignore[untyped-decorator]
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def create_app() -> Flask:
    """Build the app from the BENCH_* environment the driver sets."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["BENCH_SECRET_KEY"]
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BENCH_DATABASE_URI"]
    app.jinja_loader = DictLoader(TEMPLATES)
    db.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "login"

    @app.route("/")
    def index() -> ResponseReturnValue:
        return redirect(url_for("account"))

    @app.route("/account")
    @login_required  # type: ignore[untyped-decorator]
    def account() -> ResponseReturnValue:
        return render_template("account.html", user=current_user)

    @app.route("/login", methods=["GET", "POST"])
    def login() -> ResponseReturnValue:
        form = LoginForm()
        if form.validate_on_submit():
            identity = form.identity.data or ""
            query = select(User).where(or_(User.username == identity, User.email == identity))
            user = db.session.scalars(query).first()
            if user and check_password_hash(user.password_hash, form.password.data or ""):
                login_user(user, remember=form.remember.data)
                return redirect(url_for("account"))
            form.password.errors = ["Invalid username or password."]
        return render_template("form.html", form=form, title="Sign in")

    @app.route("/register", methods=["GET", "POST"])
    def register() -> ResponseReturnValue:
        form = RegisterForm()
        if form.validate_on_submit():
            user = User(
                username=form.username.data,
                email=form.email.data,
                password_hash=generate_password_hash(form.password.data or ""),
            )
            db.session.add(user)
            db.session.commit()
            login_user(user)
            return redirect(url_for("account"))
        return render_template("form.html", form=form, title="Register")

    return app


def init(username: str, email: str, password: str) -> None:
    """Create the schema and one user."""
    with create_app().app_context():
        db.create_all()
        db.session.add(
            User(username=username, email=email, password_hash=generate_password_hash(password))
        )
        db.session.commit()


def hashtime(rounds: int) -> dict[str, float | str]:
    """Time this app's password check (CPU and wall, per verify)."""
    encoded = generate_password_hash("correct horse battery staple")
    check_password_hash(encoded, "correct horse battery staple")  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        check_password_hash(encoded, "correct horse battery staple")
    return {
        "hasher": encoded.split("$", 1)[0],
        "cpu_ms": (time.process_time() - cpu) * 1000 / rounds,
        "wall_ms": (time.perf_counter() - wall) * 1000 / rounds,
    }


if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(*sys.argv[2:5])
    elif sys.argv[1] == "hashtime":
        print(json.dumps(hashtime(int(sys.argv[2]))))
