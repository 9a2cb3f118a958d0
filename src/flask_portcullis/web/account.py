"""The signed-in user's own account pages."""

from __future__ import annotations

import json

from flask import Response, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..decorators import login_required
from ..exceptions import DeliveryFailed, InvalidCredentials, PortcullisError, Throttled
from ..extension import get_state
from ..models import UserMixin
from ..notify import mask_email
from .blueprints import bp
from .feedback import render_form, show_error
from .forms import ChangeEmailForm, ChangePasswordForm, DeleteAccountForm
from .signin import client_ip, current_device, current_session_record, sign_in, sign_out

WRONG_PASSWORD = "That is not your current password."


def me() -> UserMixin:
    user: UserMixin = current_user._get_current_object()
    return user


@bp.route("/account")
@login_required
def account() -> ResponseReturnValue:
    return render_template("portcullis/account.html", user=me())


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
def change_email() -> ResponseReturnValue:
    form = ChangeEmailForm()
    if form.validate_on_submit():
        user, state = me(), get_state()
        try:
            email, token = state.accounts.request_email_change(
                user, form.password.data or "", form.email.data or ""
            )
            state.notifier.limit(email, client_ip())
            state.notifier.email_change(user, email, token, current_device())
        except Throttled:
            raise
        except InvalidCredentials:
            form.password.errors = [WRONG_PASSWORD]
        except DeliveryFailed as exc:
            form.form_errors.append(str(exc))
        except PortcullisError as exc:
            show_error(form, exc)
        else:
            flash(
                f"We sent a confirmation link to {mask_email(email)}. Your address changes "
                "when you follow it.",
                "success",
            )
            return redirect(url_for("portcullis.account"))
    return render_form("portcullis/change_email.html", form)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = me()
        record = current_session_record()
        remember = bool(record and record.remember)
        try:
            get_state().accounts.change_password(
                user, form.current_password.data or "", form.new_password.data or ""
            )
        except InvalidCredentials:
            form.current_password.errors = [WRONG_PASSWORD]
        except PortcullisError as exc:
            show_error(form, exc, password_field="new_password")
        else:
            # Every old session has ended; this browser continues on a fresh id.
            sign_in(user, remember=remember)
            get_state().notifier.password_changed(user, current_device(), reset=False)
            flash("Password changed. You were signed out everywhere else.", "success")
            return redirect(url_for("portcullis.account"))
    return render_form("portcullis/password.html", form)


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete_account() -> ResponseReturnValue:
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            get_state().accounts.delete_with_password(me(), form.password.data or "")
        except InvalidCredentials:
            form.password.errors = [WRONG_PASSWORD]
        else:
            sign_out()
            flash("Your account and all its data are deleted.", "info")
            return redirect(url_for(get_state().settings.post_logout_view))
    return render_form("portcullis/delete.html", form)


@bp.route("/account/export")
@login_required
def export() -> ResponseReturnValue:
    data = get_state().accounts.export(me())
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="account.json"'},
    )
