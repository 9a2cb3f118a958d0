"""The admin console: the users, one user, the actions on an account, the security log.

The ``admin`` role opens all of it. A site can give support staff part of it through a
role granting ``users.read`` (the user pages), ``users.write`` (their actions) or
``audit.read`` (the security log).

Every action is a POST with its CSRF token, wants a recent password (``/reauthenticate``),
and runs the use case the CLI runs too (``usecases/admin.py``): audited with the acting
admin, mailed to the owner where it concerns them, never leaving the site without an
active administrator.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from ..audit import LogFilter, activity_row, spreadsheet_safe
from ..audit_events import LABELS, Event
from ..caller import this_client
from ..charts import Bar, bar_chart
from ..dashboard import PER_DAY, Dashboard
from ..decorators import access_required
from ..exceptions import DeliveryFailed, EmailTaken, FieldError, LastAdmin, NotFound, TokenInvalid
from ..models import UserMixin
from ..rbac import ADMIN_ROLE
from ..state import State, get_state
from ..usecases import admin, invitations
from .blueprints import admin_bp
from .feedback import render_form, show_error
from .forms import ConfirmForm, InviteForm
from .login_bridge import is_fresh

USERS_READ, USERS_WRITE, AUDIT_READ = "users.read", "users.write", "audit.read"
PAGE_SIZE = 50
MAX_PAGE = 100_000  # keeps the OFFSET within every database's integer range
RECENT_EVENTS = 20


def allowed(user: Any, permission: str) -> bool:
    """Admins may do everything in the console; others what their roles grant."""
    return bool(user.has_role(ADMIN_ROLE) or user.has_permission(permission))


F = TypeVar("F", bound=Callable[..., Any])


def console(permission: str) -> Callable[[F], F]:
    """The view needs the admin role or ``permission`` (403 otherwise; anonymous: sign in)."""
    return access_required(lambda user: allowed(user, permission))


CSV_MAX = 100_000  # rows in one download; narrow the filter for more
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@admin_bp.route("/")
@console(USERS_READ)
def index() -> ResponseReturnValue:
    """The dashboard: counts, and charts of the last 30 days (SVG drawn here; no script)."""
    state = get_state()
    figures = Dashboard(state.db.session, state.models, state.clock).figures(
        sessions_in_sql=state.sessions.store.kind != "redis"
    )
    labels = [day.isoformat() for day in figures.days]
    charts = [
        (title, bar_chart(title, [Bar(d, n) for d, n in zip(labels, counts, strict=True)]))
        for title, counts in (
            ("Sign-ins per day", figures.per_day[Event.SIGN_IN]),
            ("Failed sign-ins per day", figures.per_day[Event.SIGN_IN_FAILED]),
            ("Sign-ups per day", figures.per_day[Event.ACCOUNT_CREATED]),
        )
    ]
    reasons = figures.failure_reasons
    return render_template(
        "portcullis/admin/dashboard.html",
        figures=figures,
        charts=charts,
        table=list(zip(labels, *(figures.per_day[str(e)] for e in PER_DAY), strict=True)),
        reasons=reasons,
        reasons_chart=bar_chart(
            "Failed sign-ins by reason, 30 days", [Bar(r, n) for r, n in reasons]
        ),
        can_read_log=allowed(current_user, AUDIT_READ),
    )


@admin_bp.route("/users")
@console(USERS_READ)
def users() -> ResponseReturnValue:
    search = request.args.get("q", "")[:254]
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    rows = get_state().accounts.search(search, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    more = len(rows) == PAGE_SIZE
    return render_template(
        "portcullis/admin/users.html",
        users=rows,
        q=search,
        page=page,
        more=more,
        can_read_log=allowed(current_user, AUDIT_READ),
    )


def _account(user_id: int) -> UserMixin:
    user = get_state().accounts.get(user_id)
    if user is None:
        abort(404)
    return user


@admin_bp.route("/users/<int:user_id>")
@console(USERS_READ)
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
        can_act=allowed(current_user, USERS_WRITE),
        can_read_log=allowed(current_user, AUDIT_READ),
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


def reauthenticate(back_to: str) -> ResponseReturnValue:
    """A recent password before acting on accounts (ASVS 3.7.1): ask, then come back."""
    flash("Confirm your password, then press the button again.", "info")
    return redirect(url_for("portcullis.reauthenticate", next=back_to))


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
@console(USERS_WRITE)
def act(user_id: int, action: str) -> ResponseReturnValue:
    """One action on one account (ACTIONS, or delete)."""
    if action not in ACTIONS and action != "delete":
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    page = url_for("portcullis_admin.user", user_id=user_id)
    if not is_fresh():
        return reauthenticate(page)
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


# -- the security log ---------------------------------------------------------------------


def _log_filter(args: Mapping[str, str]) -> tuple[LogFilter, list[str]]:
    """The filter the form asks for, and what is wrong with it (shown next to the form)."""
    problems: list[str] = []
    user_id: int | None = None
    who = args.get("user", "").strip()[:254]
    if who:
        found = get_state().accounts.get_by_identity(who)
        if found is not None:
            user_id = found.id
        elif who.isdigit() and len(who) < 19:
            user_id = int(who)  # a deleted account's events keep its id
        else:
            problems.append("No account has that username or email.")
    event = args.get("event", "")
    if event and event not in {str(e) for e in Event}:
        problems.append("Choose an event from the list.")
    ip = args.get("ip", "").strip()[:45]
    since, until = _day(args.get("from", ""), problems), _day(args.get("to", ""), problems)
    if since is not None and until is not None and until < since:
        problems.append("The end date is before the start date.")
    return LogFilter(user_id, event, ip, since, until and until + timedelta(days=1)), problems


def _day(text: str, problems: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        if not DAY.fullmatch(text):
            raise ValueError(text)
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        problems.append(f"{text[:20]!r} is not a date like 2026-12-31.")
        return None


@admin_bp.route("/audit")
@console(AUDIT_READ)
def audit() -> ResponseReturnValue:
    """Every account's security events, newest first, filtered and a page at a time."""
    state = get_state()
    where, problems = _log_filter(request.args)
    before = request.args.get("before", type=int)
    rows = [] if problems else state.audit.search(where, before=before, limit=PAGE_SIZE)
    names = state.accounts.names_of(row.user_id for row in rows if row.user_id is not None)
    query = {k: v for k, v in request.args.items() if k != "before" and v}
    page = render_template(
        "portcullis/admin/audit.html",
        rows=[{**activity_row(row), "user_id": row.user_id, "id": row.id} for row in rows],
        names=names,
        events=sorted(LABELS.items(), key=lambda item: item[1]),
        args=request.args,
        problems=problems,
        query=query,
        next_before=rows[-1].id if len(rows) == PAGE_SIZE else None,
    )
    return page, 400 if problems else 200


@admin_bp.route("/audit.csv")
@console(AUDIT_READ)
def audit_csv() -> ResponseReturnValue:
    """The filtered events as CSV (at most CSV_MAX rows), each cell spreadsheet-safe."""
    where, problems = _log_filter(request.args)
    if problems:
        abort(400)
    state = get_state()

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["at", "event", "user_id", "username", "ip", "user_agent", "detail"])
        before, sent = None, 0
        while sent < CSV_MAX:
            rows = state.audit.search(where, before=before, limit=min(1000, CSV_MAX - sent))
            if not rows:
                break
            names = state.accounts.names_of(r.user_id for r in rows if r.user_id is not None)
            for row in rows:
                cells = [
                    row.at.isoformat(),
                    row.event,
                    "" if row.user_id is None else str(row.user_id),
                    names.get(row.user_id, "") if row.user_id is not None else "",
                    row.ip,
                    row.user_agent,
                    row.detail,
                ]
                writer.writerow([spreadsheet_safe(cell) for cell in cells])
            sent += len(rows)
            before = rows[-1].id
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        if not sent:
            yield out.getvalue()

    stamp = state.clock().strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="security-log-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


# -- invitations ------------------------------------------------------------------------------


def _invite_form(state: State) -> InviteForm:
    form = InviteForm()
    form.roles.choices = [(name, name) for name in sorted(r.name for r in state.roles.list())]
    return form


@admin_bp.route("/invitations", methods=["GET", "POST"])
@console(USERS_READ)
def invitations_page() -> ResponseReturnValue:
    """Pending invitations, and (with users.write) a form to invite an address with roles."""
    state = get_state()
    form = _invite_form(state)
    can_act = allowed(current_user, USERS_WRITE)
    if request.method == "POST":
        if not can_act:
            abort(403)
        if not is_fresh():
            return reauthenticate(url_for("portcullis_admin.invitations_page"))
        if form.validate_on_submit():
            email = form.email.data or ""
            try:
                invitations.invite(
                    state, this_client(), current_user.id, email, form.roles.data or []
                )
            except EmailTaken:
                form.email.errors = ["An account already has this address."]
            except FieldError as exc:
                show_error(form, exc)
            except DeliveryFailed:
                flash("The invitation is saved but the mail did not go: press Resend.", "error")
                return redirect(url_for("portcullis_admin.invitations_page"))
            else:
                flash(f"Invited {email}.", "success")
                return redirect(url_for("portcullis_admin.invitations_page"))
    return render_form(
        "portcullis/admin/invitations.html",
        form,
        pending=state.invitations.pending(),
        now=state.clock(),
        can_act=can_act,
    )


@admin_bp.route("/invitations/<int:invitation_id>/<action>", methods=["POST"])
@console(USERS_WRITE)
def invitation_action(invitation_id: int, action: str) -> ResponseReturnValue:
    """Resend or withdraw a pending invitation."""
    if action not in ("resend", "revoke"):
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    page = url_for("portcullis_admin.invitations_page")
    if not is_fresh():
        return reauthenticate(page)
    state = get_state()
    invitation = state.invitations.get(invitation_id)
    if invitation is None:
        abort(404)
    run = invitations.resend if action == "resend" else invitations.revoke
    try:
        run(state, this_client(), current_user.id, invitation)
    except TokenInvalid:
        flash("That invitation was used or withdrawn already.", "info")
    except DeliveryFailed:
        flash("The mail did not go; try again.", "error")
    else:
        done = "sent again" if action == "resend" else "withdrawn"
        flash(f"The invitation to {invitation.email} is {done}.", "success")
    return redirect(page)
