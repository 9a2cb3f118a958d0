"""The invitee's page ``/invitation/<token>``: choose a username and password, and start
signed in with the invitation's roles and a confirmed address. Open whether or not the site
lets visitors register: an invitation is how an invite-only site signs people up."""

from __future__ import annotations

from flask import redirect, url_for
from flask.typing import ResponseReturnValue

from ..caller import this_client
from ..exceptions import FieldError, PasswordRejected, TokenInvalid
from ..state import get_state
from ..usecases import invitations
from .blueprints import bp
from .events import complete_sign_in
from .feedback import link_problem, no_referrer, render_form, show_error
from .forms import AcceptInvitationForm
from .redirects import after_login_url

TOKEN_MAX = 100  # ours are 43 characters


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> ResponseReturnValue:
    state = get_state()
    token = token[:TOKEN_MAX]
    home = url_for("portcullis.login"), "Go to the sign-in page"
    try:
        invitation = state.invitations.check(token)
    except TokenInvalid as exc:  # used, withdrawn, replaced or expired
        return link_problem(exc, again=home[0], again_label=home[1])
    form = AcceptInvitationForm()
    if form.validate_on_submit():
        try:
            user = invitations.accept(
                state, this_client(), token, form.username.data or "", form.password.data or ""
            )
        except (FieldError, PasswordRejected) as exc:
            show_error(form, exc)
        except TokenInvalid as exc:  # used meanwhile, from another browser
            return link_problem(exc, again=home[0], again_label=home[1])
        else:
            first = complete_sign_in(user, remember=False, greeting=f"Welcome, {user.username}.")
            return redirect(first or after_login_url())
    return no_referrer(render_form("portcullis/invitation.html", form, invitation=invitation))
