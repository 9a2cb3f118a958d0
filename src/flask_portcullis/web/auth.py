"""Sign-up, sign-in and sign-out pages."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..caller import this_client
from ..exceptions import (
    AccountInactive,
    EmailNotVerified,
    EmailTaken,
    FieldError,
    InvalidCredentials,
    PasswordRejected,
)
from ..state import get_state
from ..usecases import signin, signup
from .blueprints import bp
from .ceremony import begin, relying_party
from .events import complete_sign_in
from .feedback import render_form, show_error
from .forms import ConfirmForm, LoginForm
from .keys import PENDING_VERIFICATION
from .login_bridge import sign_in, sign_out
from .redirects import after_login_url, safe_next
from .second_step import start_second_step
from .trusted import presented_tokens

# One message for unknown user and wrong password (OWASP ASVS 2.2.1 / no enumeration).
BAD_CREDENTIALS = "Incorrect username, email or password."


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    state = get_state()
    if not state.settings.registration:
        abort(404)
    if current_user.is_authenticated:
        return redirect(after_login_url())
    form = state.signup.form()
    extra_fields = [form[name] for name in state.signup.names]  # the host's, after ours
    if form.validate_on_submit():
        try:
            outcome = signup.sign_up(
                state,
                this_client(),
                form.username.data or "",
                form.email.data or "",
                form.password.data or "",
                extra={name: form[name].data for name in state.signup.names},
            )
        except (EmailTaken, FieldError, PasswordRejected) as exc:  # others: 429 / 503 / 404
            show_error(form, exc)
        else:
            return welcome(outcome)
    return render_form("portcullis/register.html", form, extra_fields=extra_fields)


def welcome(outcome: signup.SignUp) -> ResponseReturnValue:
    """After sign-up: sign in (unless verification is required), or ask to check the inbox.

    A taken address (verification required) is answered exactly like a new one.
    """
    mode = get_state().settings.email_verification
    user = outcome.user
    if mode == "required" or user is None:
        session[PENDING_VERIFICATION] = outcome.address
        if outcome.mail_failed:
            flash(
                "We could not send the confirmation email. You can ask for a new one below.",
                "error",
            )
        return render_template(
            "portcullis/check_inbox.html", reason="verify", email=outcome.address
        )
    sign_in(user, remember=False)  # first: signing in empties the session, flashes too
    signin.signed_in(get_state(), this_client(), user, remember=False)
    flash(f"Welcome, {user.username}! Your account is ready.", "success")
    if outcome.mail_failed:
        flash(
            "We could not send the confirmation email. You can ask for a new one on your "
            "account page.",
            "error",
        )
    return redirect(after_login_url())


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(after_login_url())
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = signin.check_password(
                get_state(),
                this_client(),
                form.identity.data or "",
                form.password.data or "",
                presented_tokens(),
            )
        except InvalidCredentials:
            form.form_errors.append(BAD_CREDENTIALS)
        except AccountInactive:
            form.form_errors.append(
                "This account is deactivated. Contact the site's administrator."
            )
        except EmailNotVerified as exc:
            pending = get_state().accounts.get(exc.user_id)
            session[PENDING_VERIFICATION] = pending.email if pending else ""
            form.form_errors.append(str(exc))
            return login_page(form, unverified=True)
        else:
            remember = bool(form.remember.data)
            if get_state().two_factor.is_enabled(user):  # an app or a passkey
                return start_second_step(
                    user, remember=remember, next_url=safe_next(request.args.get("next"))
                )
            first = complete_sign_in(user, remember=remember)
            return redirect(first or after_login_url())
    return login_page(form)


def login_page(form: LoginForm, **context: object) -> ResponseReturnValue:
    """The sign-in page, with a passkey challenge for its button and for autofill."""
    ceremony = get_state().passkeys.authentication_options(relying_party())
    options = begin("sign-in", ceremony)
    return render_form("portcullis/login.html", form, passkey_options=options, **context)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash("That sign-out form expired; press the button again.", "error")
            return render_form("portcullis/logout.html", form)
        if current_user.is_authenticated:
            signin.signed_out(get_state(), this_client(), current_user.id)
        sign_out()
        flash("You are signed out.", "info")
        return redirect(url_for(get_state().settings.post_logout_view))
    return render_template("portcullis/logout.html", form=form)
