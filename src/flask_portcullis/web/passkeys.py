"""Passkey pages: add and remove them, and sign in with one (without a password, as the
second step after one, or to confirm it is you before a sensitive page).

The browser part is static/passkeys.js: it runs the WebAuthn ceremony with
the options a page carries in ``data-passkey-options`` and posts the answer
in the form's hidden ``credential`` field, with the form's CSRF token.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..caller import this_client
from ..decorators import login_required
from ..exceptions import AccountInactive, EmailNotVerified, FieldError, PasskeyRejected
from ..models import UserMixin
from ..state import get_state
from ..usecases import factors, signin
from .blueprints import bp
from .ceremony import begin, relying_party, take_challenge
from .events import complete_sign_in
from .feedback import WRONG_PASSWORD, render_form, show_error
from .forms import AddPasskeyForm, ConfirmForm, PasskeyForm
from .fresh import fresh_login_required
from .login_bridge import mark_fresh, me
from .redirects import after_login_url, safe_next
from .second_step import finish_second_step, second_step

EXPIRED = "That passkey request expired or was used already. Please try again."


def form_problem(form: PasskeyForm) -> str:
    """Why a passkey form was refused, in words for a flash message."""
    if form.csrf_token.errors:
        return "That form expired; please try again."
    return next(iter(form.credential.errors), EXPIRED)


@bp.route("/account/passkeys", methods=["GET", "POST"])
@fresh_login_required
def passkeys() -> ResponseReturnValue:
    state, user = get_state(), me()
    action = request.form.get("action") if request.method == "POST" else None
    if action == "remove":
        return remove(user)
    if action == "regenerate":  # a form from before /account/recovery-codes existed
        return redirect(url_for("portcullis.recovery_codes"), 303)
    form = AddPasskeyForm()
    if form.validate_on_submit():
        challenge = take_challenge("register")
        try:
            # A passkey signs in on its own, past the password and any app: adding one asks
            # for the password as changing it does, not only a recent sign-in.
            if not state.authenticator.check_password(user, form.password.data or ""):
                raise FieldError("password", WRONG_PASSWORD)
            if challenge is None:
                raise PasskeyRejected(EXPIRED)
            name, codes = factors.add_passkey(
                state,
                this_client(),
                user,
                relying_party(),
                form.credential.data or "",
                challenge,
                form.name.data or "",
            )
        except FieldError as exc:
            show_error(form, exc)
        except PasskeyRejected as exc:
            form.form_errors.append(str(exc))
        else:
            flash(f"Passkey “{name}” added.", "success")
            if codes:  # its first second factor: recovery codes come with it
                return render_template("portcullis/recovery_codes.html", codes=codes)
            return redirect(url_for("portcullis.passkeys"))
    elif request.method == "POST":
        form.form_errors.extend(form.credential.errors)  # a hidden field shows no errors
    options = begin("register", state.passkeys.registration_options(user, relying_party()))
    return render_form(
        "portcullis/passkeys.html",
        form,
        passkeys=state.passkeys.list_for(user),
        remove_form=ConfirmForm(formdata=None),
        options=options,
        recovery_codes_left=state.two_factor.recovery_codes_left(user),
    )


def remove(user: UserMixin) -> ResponseReturnValue:
    state = get_state()
    raw_id = request.form.get("passkey", "")
    # At most 9 digits: any id of ours, and never past the column's integer range.
    if (
        ConfirmForm().validate_on_submit()
        and raw_id.isascii()
        and raw_id.isdigit()
        and len(raw_id) <= 9
    ):
        name = factors.remove_passkey(state, this_client(), user, int(raw_id))
        if name is not None:
            flash(f"Passkey “{name}” removed.", "info")
            return redirect(url_for("portcullis.passkeys"))
    flash("That passkey was removed already.", "info")
    return redirect(url_for("portcullis.passkeys"))


@bp.route("/login/passkey", methods=["POST"])
def login_passkey() -> ResponseReturnValue:
    """Passwordless: a passkey that verified its owner (PIN or biometrics) is both factors."""
    state = get_state()
    back = redirect(url_for("portcullis.login", next=safe_next(request.args.get("next"))))
    form = PasskeyForm()
    if not form.validate_on_submit():
        flash(form_problem(form), "error")
        return back
    try:
        user = signin.check_passkey(
            state,
            this_client(),
            relying_party(),
            form.credential.data or "",
            lambda: take_challenge("sign-in"),
            EXPIRED,
        )
    except PasskeyRejected as exc:
        flash(str(exc), "error")
        return back
    except (AccountInactive, EmailNotVerified):
        flash("This account cannot sign in yet: sign in with your password to see why.", "error")
        return back
    first = complete_sign_in(user, remember=bool(request.form.get("remember")), factor="passkey")
    return redirect(first or after_login_url())


@bp.route("/login/two-factor/passkey", methods=["POST"])
@second_step
def login_two_factor_passkey(user: UserMixin, pending: dict[str, Any]) -> ResponseReturnValue:
    """The second step with a passkey instead of a code."""
    if own_passkey_verified(user, "second-factor", verify_user=False):
        return finish_second_step(user, pending, factor="passkey")
    return redirect(url_for("portcullis.login_two_factor"))


@bp.route("/reauthenticate/passkey", methods=["POST"])
@login_required
def reauthenticate_passkey() -> ResponseReturnValue:
    """A passkey of the signed-in user instead of the password, before a sensitive page."""
    target = safe_next(request.args.get("next"))
    # Like the password it stands for: something the user knows or is, not only a touch.
    if own_passkey_verified(me(), "reauthenticate", verify_user=True):
        mark_fresh()
        return redirect(target or url_for("portcullis.account"))
    return redirect(url_for("portcullis.reauthenticate", next=target))


def own_passkey_verified(user: UserMixin, purpose: str, *, verify_user: bool) -> bool:
    """Check the posted answer against the challenge made for ``purpose`` and ``user``'s own
    passkeys; flash why when it fails. Failures count on the second-factor lock, like wrong
    codes, and are audited."""
    state = get_state()
    form = PasskeyForm()
    challenge = take_challenge(purpose)
    if not form.validate_on_submit():
        flash(form_problem(form), "error")
        return False
    answer = form.credential.data or ""

    def check() -> object:
        if challenge is None:
            raise PasskeyRejected(EXPIRED)
        return state.passkeys.authenticate(
            relying_party(), answer, challenge, user=user, verify_user=verify_user
        )

    try:
        state.authenticator.second_factor(user, check)
    except PasskeyRejected as exc:
        signin.sign_in_failed(state, this_client(), user.id, purpose)
        flash(str(exc), "error")
        return False
    return True
