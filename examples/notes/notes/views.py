from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user, logout_user

from . import db
from .models import Note, User

bp = Blueprint("notes", __name__)


@bp.route("/")
@login_required
def index() -> ResponseReturnValue:
    notes = db.session.scalars(
        db.select(Note).where(Note.user_id == current_user.id).order_by(Note.id)
    ).all()
    return render_template("index.html", notes=notes)


@bp.post("/notes")
@login_required
def add_note() -> ResponseReturnValue:
    body = request.form.get("body", "").strip()[:500]
    if body:
        db.session.add(Note(body=body, user_id=current_user.id))
        db.session.commit()
    return redirect(url_for("notes.index"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "POST":
        user = db.session.scalar(db.select(User).where(User.username == request.form["username"]))
        if user is not None and user.check_password(request.form["password"]):
            login_user(user)
            return redirect(url_for("notes.index"))
    return render_template("login.html")


@bp.route("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    return redirect(url_for("notes.index"))
