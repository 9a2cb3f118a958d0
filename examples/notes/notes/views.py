from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from flask_portcullis import login_required

from . import db
from .models import Note

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
