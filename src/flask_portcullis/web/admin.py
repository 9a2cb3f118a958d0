"""The admin console (role ``admin``): the users, one user, and the actions on an account.

Every action is a POST with its CSRF token, wants a recent password (``/reauthenticate``),
and runs the use case the CLI runs too (``usecases/admin.py``): audited with the acting
admin, mailed to the owner where it concerns them, never leaving the site without an
active administrator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..audit import activity_row
from ..caller import this_client
from ..decorators import roles_required
from ..exceptions import LastAdmin, NotFound
from ..models import UserMixin
from ..rbac import ADMIN_ROLE
from ..state import State, get_state
from ..usecases import admin
from .blueprints import admin_bp
from .forms import ConfirmForm
from .login_bridge import is_fresh

PAGE_SIZE = 50
MAX_PAGE = 100_000  # keeps the OFFSET within every database's integer range
RECENT_EVENTS = 20


@admin_bp.route("/")
@roles_required(ADMIN_ROLE)
def index() -> ResponseReturnValue:
    """The console's front page: the accounts, until the dashboard comes."""
    return users()


@admin_bp.route("/users")
@roles_required(ADMIN_ROLE)
def users() -> ResponseReturnValue:
    search = request.args.get("q", "")[:254]
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    rows = get_state().accounts.search(search, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    more = len(rows) == PAGE_SIZE
    return render_template(
        "portcullis/admin/users.html", users=rows, q=search, page=page, more=more
    )


def _account(user_id: int) -> UserMixin:
    user = get_state().accounts.get(user_id)
    if user is None:
        abort(404)
    return user


@admin_bp.route("/users/<int:user_id>")
@roles_required(ADMIN_ROLE)
def user(user_id: int) -> ResponseReturnValue:
    """One account: profile, roles, devices, factors (never a secret), providers, events."""
    state = get_state()
    account = _account(user_id)
    return render_template(
        "portcullis/admin/user.html",
        account=account,
        roles=sorted(role.name for role in account.roles),
        all_roles=sorted(role.name for role in state.roles.list()),
        sessions=state.sessions.list_for(account.id),
        totp=state.two_factor.has_totp(account),
        passkeys=state.passkeys.count(account),
        recovery_codes=state.two_factor.recovery_codes_left(account),
        providers=state.federation.links_of(account.id),
        events=[activity_row(event) for event in state.audit.recent(account.id, RECENT_EVENTS)],
        form=ConfirmForm(formdata=None),
    )


def _end_sessions(state: State, account: UserMixin) -> str:
    count = admin.end_sessions(state, this_client(), current_user.id, account)
    return f"Signed {account.username} out of {count} session{'s' if count != 1 else ''}."


def _reset_factors(state: State, account: UserMixin) -> str:
    admin.reset_second_factors(state, this_client(), current_user.id, account)
    return f"{account.username}'s second factors are removed; they set them up again."


def _role(grant: bool) -> Callable[[State, UserMixin], str]:
    def act(state: State, account: UserMixin) -> str:
        name = request.form.get("role", "").strip()
        state.roles.require(name)  # NotFound for an unknown role
        change = admin.grant_role if grant else admin.remove_role
        if not change(state, this_client(), current_user.id, account, name):
            return f"{account.username} {'already had' if grant else 'did not have'} {name}."
        return f"{account.username} {'now has' if grant else 'no longer has'} {name}."

    return act


def _active(active: bool) -> Callable[[State, UserMixin], str]:
    def act(state: State, account: UserMixin) -> str:
        admin.set_active(state, this_client(), current_user.id, account, active)
        return f"{account.username} is {'active' if active else 'deactivated'}."

    return act


def _simple(run: Callable[..., Any], done: str) -> Callable[[State, UserMixin], str]:
    def act(state: State, account: UserMixin) -> str:
        run(state, this_client(), current_user.id, account)
        return done.format(name=account.username)

    return act


ACTIONS: dict[str, Callable[[State, UserMixin], str]] = {
    "grant-role": _role(grant=True),
    "remove-role": _role(grant=False),
    "activate": _active(True),
    "deactivate": _active(False),
    "end-sessions": _end_sessions,
    "reset-factors": _reset_factors,
    "unlock": _simple(admin.unlock, "{name} may sign in again now."),
    "send-reset": _simple(admin.send_password_reset, "A reset link is on its way to {name}."),
    "resend-verification": _simple(
        admin.resend_verification, "A confirmation link is on its way to {name}."
    ),
}


@admin_bp.route("/users/<int:user_id>/<action>", methods=["POST"])
@roles_required(ADMIN_ROLE)
def act(user_id: int, action: str) -> ResponseReturnValue:
    """One action on one account (ACTIONS, or delete)."""
    if action not in ACTIONS and action != "delete":
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    page = url_for("portcullis_admin.user", user_id=user_id)
    if not is_fresh():  # a recent password before acting on accounts (ASVS 3.7.1)
        flash("Confirm your password, then press the button again.", "info")
        return redirect(url_for("portcullis.reauthenticate", next=page))
    state = get_state()
    account = _account(user_id)
    try:
        if action == "delete":
            name = account.username
            admin.delete(state, this_client(), current_user.id, account)
            flash(f"{name}'s account is deleted.", "success")
            return redirect(url_for("portcullis_admin.users"))
        flash(ACTIONS[action](state, account), "success")
    except LastAdmin as exc:
        flash(str(exc), "error")
    except NotFound:
        flash("There is no such role.", "error")
    return redirect(page)
