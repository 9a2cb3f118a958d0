"""Pages reached from emailed links: verify an address, reset a password, confirm a new address.

Following a link only shows a page; the change happens on its POST button
(every state change is a POST), so mail scanners that open links change
nothing. These pages send ``Referrer-Policy: no-referrer`` so the token in
their URL never leaks to another site.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..caller import this_client
from ..exceptions import (
    DeliveryFailed,
    EmailTaken,
    FieldError,
    PasswordRejected,
    TokenInvalid,
)
from ..identity import mask_email
from ..state import get_state
from ..tokens import Purpose
from ..usecases import passwords, self_service, signup
from .blueprints import bp
from .feedback import link_problem, no_referrer, render_form, show_error
from .forms import ConfirmForm, ForgotPasswordForm, ResetPasswordForm
from .keys import PENDING_VERIFICATION

# -- email verification ------------------------------------------------------------


@bp.route("/verify-email/<token>", methods=["GET", "POST"])
def verify_email(token: str) -> ResponseReturnValue:
    form = ConfirmForm()
    state = get_state()
    again = url_for("portcullis.account" if current_user.is_authenticated else "portcullis.login")
    try:
        state.links.check(Purpose.VERIFY_EMAIL, token)
        if not form.validate_on_submit():
            return no_referrer(render_template("portcullis/verify_email.html", form=form))
        signup.verify_email(state, this_client(), token)
    except TokenInvalid as exc:
        return link_problem(exc, again=again, again_label="Ask for a new link")
    session.pop(PENDING_VERIFICATION, None)
    flash("Thank you: your email address is confirmed.", "success")
    return redirect(again)


@bp.route("/verify-email", methods=["POST"])
def resend_verification() -> ResponseReturnValue:
    """Send a fresh verification link to the signed-in user, or to the one just refused."""
    state = get_state()
    form = ConfirmForm()
    if not current_user.is_authenticated:
        return resend_to_pending_address(form)
    user = current_user._get_current_object()
    back = url_for("portcullis.account")
    if not form.validate_on_submit():
        flash("That form expired; press the button again.", "error")
        return redirect(back)
    try:
        sent = signup.send_verification(state, this_client(), user)
    except DeliveryFailed as exc:
        flash(str(exc), "error")
    else:
        if sent:
            flash(f"We sent a new confirmation link to {mask_email(user.email)}.", "success")
        else:
            flash("Your email address is already confirmed.", "info")
    return redirect(back)


def resend_to_pending_address(form: ConfirmForm) -> ResponseReturnValue:
    """Re-send to the address of the last sign-up or refused sign-in, answering the same
    whether it has an account waiting for confirmation or not (no enumeration)."""
    state = get_state()
    back = url_for("portcullis.login")
    pending = session.get(PENDING_VERIFICATION)
    if not form.validate_on_submit() or not isinstance(pending, str):
        flash("Sign in again to ask for a new confirmation link.", "error")
        return redirect(back)
    signup.offer_verification(state, this_client(), pending)
    flash(f"If {mask_email(pending)} still needs confirming, a new link is on its way.", "success")
    return redirect(back)


# -- password reset ------------------------------------------------------------------


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password() -> ResponseReturnValue:
    """Ask for a reset link. The answer is the same, and as fast, for any address."""
    state = get_state()
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        passwords.offer_reset(state, this_client(), form.email.data or "")
        return render_template("portcullis/check_inbox.html", reason="reset")
    return render_form("portcullis/forgot_password.html", form)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> ResponseReturnValue:
    state = get_state()
    again = url_for("portcullis.forgot_password")
    try:
        state.links.check(Purpose.RESET_PASSWORD, token)  # showing it uses nothing up
    except TokenInvalid as exc:
        return link_problem(exc, again=again, again_label="Send me a new link")
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            passwords.reset_password(state, this_client(), token, form.password.data or "")
        except TokenInvalid as exc:
            return link_problem(exc, again=again, again_label="Send me a new link")
        except (FieldError, PasswordRejected) as exc:
            show_error(form, exc)
        else:
            session.clear()  # the reset ended every session; this browser's too
            flash("Your password is reset and every device was signed out. Sign in now.", "success")
            return no_referrer(redirect(url_for("portcullis.login")))
    return no_referrer(render_form("portcullis/reset_password.html", form))


# -- email change ------------------------------------------------------------------


@bp.route("/confirm-email/<token>", methods=["GET", "POST"])
def confirm_email(token: str) -> ResponseReturnValue:
    form = ConfirmForm()
    state = get_state()
    again = url_for("portcullis.change_email")
    try:
        state.links.check(Purpose.CHANGE_EMAIL, token)
        if not form.validate_on_submit():
            return no_referrer(render_template("portcullis/confirm_email.html", form=form))
        user = self_service.confirm_email_change(state, this_client(), token)
    except TokenInvalid as exc:
        return link_problem(exc, again=again, again_label="Start the change again")
    except EmailTaken as exc:
        flash(str(exc), "error")
        return redirect(again)
    flash(f"Your email address is now {user.email}.", "success")
    return redirect(url_for("portcullis.account"))
