"""Two-factor sign-in pages: set up TOTP, recovery codes, and the second sign-in step."""

from __future__ import annotations

from typing import Any

import segno
from flask import flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..caller import this_client
from ..exceptions import InvalidCode
from ..models import UserMixin
from ..state import get_state
from ..usecases import factors
from .blueprints import bp
from .ceremony import begin, relying_party
from .events import verify_second_factor
from .feedback import WRONG_PASSWORD, render_form
from .forms import CodeForm, PasswordConfirmForm
from .fresh import fresh_login_required
from .keys import TOTP_SETUP
from .login_bridge import me
from .second_step import finish_second_step, second_step


@bp.route("/login/two-factor", methods=["GET", "POST"])
@second_step
def login_two_factor(user: UserMixin, pending: dict[str, Any]) -> ResponseReturnValue:
    form = CodeForm()
    if form.validate_on_submit():
        try:
            method = verify_second_factor(user, form.code.data or "")
        except InvalidCode as exc:
            form.code.errors = [str(exc)]
        else:
            return finish_second_step(user, pending, factor=method)
    return second_step_page(user, form)


def second_step_page(user: UserMixin, form: CodeForm) -> ResponseReturnValue:
    """The code field if the user has an app (recovery codes always work), and the passkey
    button if they have a passkey."""
    state = get_state()
    options = None
    if state.passkeys.count(user):
        # The password was the first factor: a touch of the key is enough for the second.
        ceremony = state.passkeys.authentication_options(relying_party(), user, verify_user=False)
        options = begin("second-factor", ceremony)
    return render_form(
        "portcullis/login_two_factor.html",
        form,
        has_totp=state.two_factor.has_totp(user),
        passkey_options=options,
    )


@bp.route("/account/two-factor", methods=["GET", "POST"])
@fresh_login_required
def two_factor() -> ResponseReturnValue:
    state, user = get_state(), me()
    if state.two_factor.has_totp(user):
        return manage(user)
    form = CodeForm()
    sealed = session.get(TOTP_SETUP)
    setup = state.two_factor.unseal(sealed) if isinstance(sealed, str) else None
    if form.validate_on_submit() and setup is not None:
        try:
            codes = factors.enable_app(state, this_client(), user, setup, form.code.data or "")
        except InvalidCode as exc:
            form.code.errors = [str(exc)]
        else:
            session.pop(TOTP_SETUP, None)
            flash("Two-factor sign-in is on.", "success")
            return render_template("portcullis/recovery_codes.html", codes=codes)
    if setup is None:  # kept across reloads: the app may have scanned it already
        setup = state.two_factor.begin(user).secret
        session[TOTP_SETUP] = state.two_factor.seal(setup)  # encrypted: the cookie is only signed
    uri = state.two_factor.uri(user, setup)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, dark="#1d2330")
    return render_form("portcullis/two_factor_setup.html", form, secret=setup, qr=qr, uri=uri)


def manage(user: UserMixin) -> ResponseReturnValue:
    """Two-factor is on: turn it off (needs the password). New recovery codes are made at
    /account/recovery-codes, under the same rule for every factor."""
    state = get_state()
    if request.form.get("action") == "regenerate":  # a form from before that page existed
        return redirect(url_for("portcullis.recovery_codes"), 303)
    form = PasswordConfirmForm()
    if form.validate_on_submit() and request.form.get("action") == "disable":
        if not state.authenticator.check_password(user, form.password.data or ""):
            form.password.errors = [WRONG_PASSWORD]
        else:
            change = factors.disable_app(state, this_client(), user)
            flash(change, "info")
            return redirect(url_for("portcullis.account"))
    left = state.two_factor.recovery_codes_left(user)
    return render_form("portcullis/two_factor_manage.html", form, left=left)


# Where a user who must set up two-factor may still go.
ENROLMENT_ENDPOINTS = {
    "portcullis.two_factor",
    "portcullis.passkeys",
    "portcullis.reauthenticate",
    "portcullis.reauthenticate_passkey",
    "portcullis.logout",
    "portcullis.static",
    "portcullis.healthz",
    "static",
}


def require_second_factor() -> ResponseReturnValue | None:
    """PORTCULLIS_REQUIRE_2FA_FOR_ROLES: holders of those roles set up a second factor first."""
    state = get_state()
    if request.endpoint in ENROLMENT_ENDPOINTS or request.blueprint == "portcullis_api":
        return None
    if not current_user.is_authenticated:
        return None
    user = current_user._get_current_object()
    roles = state.settings.require_2fa_for_roles
    if any(user.has_role(role) for role in roles) and not state.two_factor.is_enabled(user):
        flash("Your role needs two-factor sign-in: please set it up first.", "info")
        return redirect(url_for("portcullis.two_factor"))
    return None
