"""Sign-up, sign-in and sign-out pages."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..audit_events import Event
from ..exceptions import (
    AccountInactive,
    DeliveryFailed,
    EmailNotVerified,
    EmailTaken,
    FieldError,
    InvalidCredentials,
    PasswordRejected,
)
from ..extension import get_state
from ..identity import clean_email
from ..models import UserMixin
from .blueprints import bp
from .ceremony import begin, relying_party
from .events import audit, complete_sign_in
from .feedback import render_form, show_error
from .forms import ConfirmForm, LoginForm
from .links import PENDING_VERIFICATION
from .redirects import safe_next
from .signin import client_ip, current_device, sign_in, sign_out
from .trusted import presented_tokens
from .two_factor import start_second_step

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
    form = state.signup.form()
    extra_fields = [form[name] for name in state.signup.names]  # the host's, after ours
    if form.validate_on_submit():
        try:
            user = state.accounts.register(
                form.username.data or "",
                form.email.data or "",
                form.password.data or "",
                client=client_ip(),
                extra={name: form[name].data for name in state.signup.names},
            )
        except EmailTaken:
            if state.settings.email_verification != "required":
                show_error(form, EmailTaken())
            else:
                return tell_the_owner(form.email.data or "")
        except (FieldError, PasswordRejected) as exc:  # others: the 429 / 503 / 404 pages
            show_error(form, exc)
        else:
            return welcome(user)
    return render_form("portcullis/register.html", form, extra_fields=extra_fields)


def tell_the_owner(address: str) -> ResponseReturnValue:
    """Someone signed up with an address that has an account: answer as for a new account,
    and mail the owner instead (no enumeration; only with verification required, where a
    new account is not signed in either)."""
    state = get_state()
    address = clean_email(address)  # shown and kept exactly as a new sign-up's would be
    owner = state.accounts.get_by_email(address)
    if owner is not None:
        state.notifier.registration_attempt(owner, current_device(), client_ip())
    session[PENDING_VERIFICATION] = address
    return render_template("portcullis/check_inbox.html", reason="verify", email=address)


def welcome(user: UserMixin) -> ResponseReturnValue:
    """After sign-up: sign in (unless verification is required) and send the confirmation link."""
    state = get_state()
    mode = state.settings.email_verification
    audit(Event.ACCOUNT_CREATED, user.id)
    if mode != "required":
        sign_in(user, remember=False)  # first: signing in empties the session, flashes too
        audit(Event.SIGN_IN, user.id, remember=False)
        flash(f"Welcome, {user.username}! Your account is ready.", "success")
    if mode != "off":
        try:
            state.notifier.verification(user, state.accounts.make_verification_token(user))
        except DeliveryFailed:
            flash(
                "We could not send the confirmation email. You can ask for a new one "
                + ("below." if mode == "required" else "on your account page."),
                "error",
            )
    if mode == "required":
        session[PENDING_VERIFICATION] = user.email
        return render_template("portcullis/check_inbox.html", reason="verify", email=user.email)
    return redirect(after_login_url())


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(after_login_url())
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = get_state().accounts.authenticate(
                form.identity.data or "",
                form.password.data or "",
                client=client_ip(),
                device_tokens=presented_tokens(),
            )
        except InvalidCredentials as exc:
            audit(Event.SIGN_IN_FAILED, exc.user_id, reason=exc.reason)
            form.form_errors.append(BAD_CREDENTIALS)
        except AccountInactive as exc:
            audit(Event.SIGN_IN_FAILED, exc.user_id, reason=exc.reason)
            form.form_errors.append(
                "This account is deactivated. Contact the site's administrator."
            )
        except EmailNotVerified as exc:
            audit(Event.SIGN_IN_FAILED, exc.user_id, reason=exc.reason)
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
            complete_sign_in(user, remember=remember)
            return redirect(after_login_url())
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
            audit(Event.SIGN_OUT, current_user.id)
        sign_out()
        flash("You are signed out.", "info")
        return redirect(url_for(get_state().settings.post_logout_view))
    return render_template("portcullis/logout.html", form=form)
