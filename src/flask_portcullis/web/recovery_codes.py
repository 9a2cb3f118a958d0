"""``/account/recovery-codes``: how many recovery codes are left, and a new set on request."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ..caller import this_client
from ..state import get_state
from ..usecases import factors
from .blueprints import bp
from .feedback import render_form
from .forms import ConfirmForm
from .fresh import fresh_login_required
from .login_bridge import me


@bp.route("/account/recovery-codes", methods=["GET", "POST"])
@fresh_login_required
def recovery_codes() -> ResponseReturnValue:
    """Show how many codes are left; a POST voids them all and shows a new set once.

    One rule whichever factor the codes back up (the app or a passkey): a
    recent re-authentication, the freshness window the other sensitive pages
    use (OWASP ASVS 3.7.1), not a password on the form. A new set locks out
    no one but a thief who already holds old codes, and the codes are only
    ever a second factor, so the risk is a signed-in browser left unattended,
    which freshness answers. The password on top would shut out an account
    whose owner proves themselves with a passkey and has no password (one
    made through a sign-in provider); /reauthenticate takes either.
    """
    state, user = get_state(), me()
    form = ConfirmForm()
    has_factor = state.two_factor.is_enabled(user)
    if form.validate_on_submit():
        if not has_factor:  # codes stand in for a factor: one must exist
            flash(
                "Set up an authenticator app or a passkey first: recovery codes come with it.",
                "info",
            )
            return redirect(url_for("portcullis.recovery_codes"))
        return new_recovery_codes()
    return render_form(
        "portcullis/recovery_codes_manage.html",
        form,
        has_factor=has_factor,
        left=state.two_factor.recovery_codes_left(user),
    )


def new_recovery_codes() -> ResponseReturnValue:
    """Void the old recovery codes, show the new set once, and tell the owner."""
    state, user = get_state(), me()
    codes = factors.new_recovery_codes(state, this_client(), user)
    return render_template("portcullis/recovery_codes.html", codes=codes)
