"""Sign-up, sign-in and sign-out pages."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..exceptions import AccountInactive, InvalidCredentials, PortcullisError
from ..extension import get_state
from .blueprints import bp
from .feedback import render_form, show_error
from .forms import ConfirmForm, LoginForm, RegisterForm
from .redirects import safe_next
from .signin import sign_in, sign_out

# One message for unknown user and wrong password (OWASP ASVS 2.2.1 / no enumeration).
BAD_CREDENTIALS = "Incorrect username, email or password."


def after_login_url() -> str:
    return safe_next(request.args.get("next")) or url_for(get_state().settings.post_login_view)


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    state = get_state()
    if not state.settings.registration:
        abort(404)
    if current_user.is_authenticated:
        return redirect(after_login_url())
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = state.accounts.register(
                form.username.data or "", form.email.data or "", form.password.data or ""
            )
        except PortcullisError as exc:
            show_error(form, exc)
        else:
            sign_in(user, remember=False)
            flash(f"Welcome, {user.username}! Your account is ready.", "success")
            return redirect(after_login_url())
    return render_form("portcullis/register.html", form)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(after_login_url())
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = get_state().accounts.authenticate(
                form.identity.data or "", form.password.data or ""
            )
        except InvalidCredentials:
            form.form_errors.append(BAD_CREDENTIALS)
        except AccountInactive:
            form.form_errors.append(
                "This account is deactivated. Contact the site's administrator."
            )
        else:
            sign_in(user, remember=bool(form.remember.data))
            flash(f"Signed in as {user.username}.", "success")
            return redirect(after_login_url())
    return render_form("portcullis/login.html", form)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash("That sign-out form expired; press the button again.", "error")
            return render_form("portcullis/logout.html", form)
        sign_out()
        flash("You are signed out.", "info")
        return redirect(url_for(get_state().settings.post_logout_view))
    return render_template("portcullis/logout.html", form=form)
