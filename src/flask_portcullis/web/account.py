"""The signed-in user's own account pages."""

from __future__ import annotations

import json

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..accounts import has_password
from ..audit import activity_row
from ..caller import this_client
from ..decorators import login_required
from ..exceptions import DeliveryFailed, FieldError, InvalidCredentials, PasswordRejected
from ..identity import mask_email
from ..models import UserMixin
from ..providers import OIDC
from ..state import get_state
from ..usecases import passwords, self_service
from .blueprints import bp
from .ceremony import begin, relying_party
from .feedback import WRONG_PASSWORD, render_form, show_error
from .forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    ConfirmForm,
    DeleteAccountForm,
    PasswordConfirmForm,
)
from .fresh import ask_for_password, fresh_login_required
from .login_bridge import (
    current_session_record,
    current_session_token,
    is_fresh,
    mark_fresh,
    me,
    sign_in,
    sign_out,
)
from .redirects import safe_next
from .trusted import current_device_id


@bp.route("/account")
@login_required
def account() -> ResponseReturnValue:
    # The identity fields suffice: no ORM load on the most viewed page.
    return render_template("portcullis/account.html", user=current_user)


def without_password(form: ChangeEmailForm | DeleteAccountForm) -> bool:
    """An account made through a sign-in provider may have no password: its form then asks
    for none, and a recent re-authentication (through the provider) stands in for it."""
    if has_password(me()):
        return False
    del form.password
    return True


@bp.route("/account/email", methods=["GET", "POST"])
@login_required
def change_email() -> ResponseReturnValue:
    form = ChangeEmailForm()
    passwordless = without_password(form)
    if passwordless and not is_fresh():
        return ask_for_password()
    if form.validate_on_submit():
        user, state = me(), get_state()
        password = None if passwordless else form.password.data or ""
        try:
            email = self_service.request_email_change(
                state, this_client(), user, password, form.email.data or ""
            )
        except InvalidCredentials:
            form.password.errors = [WRONG_PASSWORD]
        except DeliveryFailed as exc:
            form.form_errors.append(str(exc))
        except (FieldError, PasswordRejected) as exc:
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
            passwords.change_password(
                get_state(),
                this_client(),
                user,
                form.current_password.data or "",
                form.new_password.data or "",
            )
        except InvalidCredentials:
            form.current_password.errors = [WRONG_PASSWORD]
        except (FieldError, PasswordRejected) as exc:
            show_error(form, exc, password_field="new_password")
        else:
            # Every old session has ended; this browser continues on a fresh id.
            sign_in(user, remember=remember)
            flash("Password changed. You were signed out everywhere else.", "success")
            return redirect(url_for("portcullis.account"))
    return render_form("portcullis/password.html", form)


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete_account() -> ResponseReturnValue:
    form = DeleteAccountForm()
    passwordless = without_password(form)
    if passwordless and not is_fresh():
        return ask_for_password()
    if form.validate_on_submit():
        password = None if passwordless else form.password.data or ""
        try:
            self_service.delete_account(get_state(), this_client(), me(), password)
        except InvalidCredentials:
            form.password.errors = [WRONG_PASSWORD]
        else:
            sign_out()
            flash("Your account and all its data are deleted.", "info")
            return redirect(url_for(get_state().settings.post_logout_view))
    return render_form("portcullis/delete.html", form)


@bp.route("/account/export")
@fresh_login_required
def export() -> ResponseReturnValue:
    data = get_state().export.collect(me())
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="account.json"'},
    )


@bp.route("/account/sessions", methods=["GET", "POST"])
@login_required
def sessions() -> ResponseReturnValue:
    """The user's signed-in devices and trusted devices; end one, or all but this one (OWASP
    ASVS 3.3.4)."""
    state, user = get_state(), me()
    form = ConfirmForm()
    current = current_session_record()
    this_device = current_device_id(user)
    if request.method == "POST" and not is_fresh():  # listing is free; ending is sensitive
        return ask_for_password()
    if form.validate_on_submit():
        target = request.form.get("session", "")
        device = request.form.get("device", "")
        if device:
            forget_device(user, device)
        elif target == "others":
            # The others' trusted devices too: they start over with the shared limits.
            count = self_service.end_sessions(
                state,
                this_client(),
                user.id,
                keep_token=current_session_token(),
                keep_device=this_device,
            )
            flash(f"Signed out {count} other device{'s' if count != 1 else ''}.", "success")
        elif current is not None and target == current.id:
            flash("To sign out this device, use Sign out.", "info")
        elif self_service.end_session(state, this_client(), user.id, target):
            flash("That device is signed out.", "success")
        else:
            flash("That device was already signed out.", "info")
        return redirect(url_for("portcullis.sessions"))
    records = state.sessions.list_for(user.id)
    return render_template(
        "portcullis/sessions.html",
        records=records,
        current_id=current.id if current else None,
        devices=state.devices.list_for(user.id),
        this_device=this_device,
        form=form,
    )


def forget_device(user: UserMixin, record_id: str) -> None:
    """Stop trusting one device: its next sign-in is counted like any unknown client's."""
    if self_service.forget_device(get_state(), this_client(), user.id, record_id):
        flash("That device is no longer trusted.", "success")
    else:
        flash("That device was not trusted.", "info")


@bp.route("/account/activity")
@login_required
def activity() -> ResponseReturnValue:
    """The user's recent security events (OWASP ASVS 7.1: users can see what happened)."""
    events = get_state().audit.recent(me().id, limit=50)
    return render_template("portcullis/activity.html", events=[activity_row(e) for e in events])


@bp.route("/reauthenticate", methods=["GET", "POST"])
@login_required
def reauthenticate() -> ResponseReturnValue:
    """Ask for the password again before a sensitive page (OWASP ASVS 3.7.1)."""
    form = PasswordConfirmForm()
    if form.validate_on_submit():
        if get_state().authenticator.check_password(me(), form.password.data or ""):
            mark_fresh()
            return redirect(safe_next(request.args.get("next")) or url_for("portcullis.account"))
        form.password.errors = [WRONG_PASSWORD]
    state, user = get_state(), me()
    options = None
    if state.passkeys.count(user):
        ceremony = state.passkeys.authentication_options(relying_party(), user)
        options = begin("reauthenticate", ceremony)
    # Only providers that can be asked to sign the person in again (OpenID Connect).
    oidc = {p.name for p in state.settings.oauth_providers if p.kind == OIDC}
    linked = [link.provider for link in state.federation.links_of(user.id) if link.provider in oidc]
    return render_form(
        "portcullis/reauthenticate.html", form, passkey_options=options, linked_providers=linked
    )
