"""``flask users ...`` and ``flask roles ...``: account administration from the shell."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.exc import DBAPIError

from .audit_events import Event
from .exceptions import PasswordRejected, PortcullisError
from .models import UserMixin
from .state import get_state
from .usecases import admin, invitations
from .usecases.client import Client, record

CLI_AGENT = "flask cli"


class Commands(AppGroup):
    """A command group whose errors are one clear line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PasswordRejected as exc:
            raise click.ClickException("password rejected: " + " ".join(exc.reasons)) from exc
        except PortcullisError as exc:
            raise click.ClickException(str(exc)) from exc
        except DBAPIError as exc:
            # The command's app context has ended by now: push one to look at the database.
            with ctx.ensure_object(ScriptInfo).load_app().app_context():
                problem = _database_problem(exc)
            raise click.ClickException(problem) from exc


def _database_problem(exc: DBAPIError) -> str:
    state = get_state()
    table = state.models.User.__tablename__
    try:
        migrated = sa.inspect(state.db.engine).has_table(table)
    except DBAPIError:
        migrated = True  # cannot even look: the error itself says more
    if not migrated:
        return (
            f"the database has no {table} table yet: run `flask db upgrade` to create "
            "Portcullis's tables, then try again."
        )
    first_line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
    return f"database error: {first_line or type(exc.orig).__name__}"


users = Commands("users", help="Manage user accounts.")
roles = Commands("roles", help="Manage roles and their permissions.")
portcullis = Commands(
    "portcullis", help="Operate Portcullis: audit retention, configuration checks."
)


def _client() -> Client:
    """The shell, as the use cases and the audit log name it."""
    return Client(ip="", user_agent=CLI_AGENT, at=get_state().clock())


def _audit(event: Event, user_id: int | None, **detail: Any) -> None:
    record(get_state(), event, user_id, _client(), actor="cli", **detail)


def _describe(user: UserMixin) -> str:
    flags = [] if user.active else ["inactive"]
    if not user.email_verified:
        flags.append("unverified")
    role_names = ",".join(sorted(r.name for r in user.roles)) or "-"
    extra = f" [{' '.join(flags)}]" if flags else ""
    return f"{user.id}\t{user.username}\t{user.email}\troles={role_names}{extra}"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; the trailing newline is the terminator, not part of the password.
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users.command("create")
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--role", "role_names", multiple=True, help="Give this role (repeatable).")
@click.option("--unverified", is_flag=True, help="Do not mark the email address as verified.")
def create_user(
    username: str, email: str, password_stdin: bool, role_names: tuple[str, ...], unverified: bool
) -> None:
    """Create a user (the operator vouches for the address unless --unverified)."""
    state = get_state()
    for name in role_names:
        state.roles.require(name)
    password = _read_password(password_stdin)
    user = state.accounts.register(username, email, password, verified=not unverified)
    _audit(Event.ACCOUNT_CREATED, user.id)
    for name in role_names:
        state.roles.add_to_user(user, name)
        _audit(Event.ROLE_GRANTED, user.id, role=name)
    click.echo(f"created user {user.username} (id {user.id})")


@users.command("list")
@click.option("--search", default="", help="Only users whose username or email contains this.")
def list_users(search: str) -> None:
    """List users: id, username, email, roles."""
    accounts, offset, batch = get_state().accounts, 0, 500
    while page := accounts.search(search, limit=batch, offset=offset):
        for user in page:
            click.echo(_describe(user))
        offset += batch


@users.command("show")
@click.argument("identity")
def show_user(identity: str) -> None:
    """Show one user (by username or email) and their sessions."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    click.echo(_describe(user))
    last = f"{user.last_login_at:%Y-%m-%d %H:%M} UTC" if user.last_login_at else "never"
    click.echo(f"created {user.created_at:%Y-%m-%d %H:%M} UTC; last sign-in {last}")
    for held in state.sessions.list_for(user.id):
        click.echo(f"session since {held.created_at:%Y-%m-%d %H:%M} from {held.ip or '?'}")


def _set_active(identity: str, active: bool) -> None:
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    admin.set_active(state, _client(), None, user, active)
    click.echo(f"{user.username} is now {'active' if active else 'inactive'}")


@users.command("activate")
@click.argument("identity")
def activate(identity: str) -> None:
    """Let a deactivated user sign in again."""
    _set_active(identity, True)


@users.command("deactivate")
@click.argument("identity")
def deactivate(identity: str) -> None:
    """Stop a user signing in and end their sessions now."""
    _set_active(identity, False)


@users.command("delete")
@click.argument("identity")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_user(identity: str, yes: bool) -> None:
    """Delete a user and everything of theirs."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    if not yes:
        click.confirm(f"Delete {user.username} <{user.email}>?", abort=True)
    name = user.username
    admin.delete(state, _client(), None, user)
    click.echo(f"deleted {name}")


@users.command("add-role")
@click.argument("identity")
@click.argument("role")
def add_role(identity: str, role: str) -> None:
    """Give a user a role."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    changed = admin.grant_role(state, _client(), None, user, role)
    click.echo(f"{user.username} {'now has' if changed else 'already had'} role {role}")


@users.command("remove-role")
@click.argument("identity")
@click.argument("role")
def remove_role(identity: str, role: str) -> None:
    """Take a role from a user."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    changed = admin.remove_role(state, _client(), None, user, role)
    click.echo(f"{user.username} {'no longer has' if changed else 'did not have'} role {role}")


@users.command("revoke-sessions")
@click.argument("identity")
def revoke_sessions(identity: str) -> None:
    """Sign a user out everywhere, at once, and stop trusting every device of theirs."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    count = admin.end_sessions(state, _client(), None, user)
    click.echo(f"ended {count} session(s) of {user.username}")


@users.command("reset-two-factor")
@click.argument("identity")
def reset_two_factor(identity: str) -> None:
    """Remove a user's second factors (app, recovery codes, passkeys) and end their sessions:
    they enrol again (an admin never learns or sets a secret)."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    count = admin.reset_second_factors(state, _client(), None, user)
    click.echo(
        f"two-factor sign-in of {user.username} is off, passkeys removed; ended {count} session(s)"
    )


@users.command("unlock")
@click.argument("identity")
def unlock(identity: str) -> None:
    """Lift a user's sign-in lock (after a run of failed sign-ins)."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    admin.unlock(state, _client(), None, user)
    click.echo(f"{user.username} may sign in again now")


@users.command("send-reset")
@click.argument("identity")
def send_reset(identity: str) -> None:
    """Mail a user a password reset link (needs SERVER_NAME for the link's address)."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    _needs_server_name()
    admin.send_password_reset(state, _client(), None, user)
    click.echo(f"sent a password reset link to {user.email}")


@users.command("resend-verification")
@click.argument("identity")
def resend_verification(identity: str) -> None:
    """Mail a user a new link to confirm their address (needs SERVER_NAME)."""
    state = get_state()
    user = state.accounts.require_by_identity(identity)
    _needs_server_name()
    sent = admin.resend_verification(state, _client(), None, user)
    click.echo(f"sent a confirmation link to {user.email}" if sent else "already confirmed")


@users.command("invite")
@click.argument("email")
@click.option("--role", "role_names", multiple=True, help="Give this role (repeatable).")
def invite(email: str, role_names: tuple[str, ...]) -> None:
    """Mail EMAIL an invitation to make an account (needs SERVER_NAME for the link)."""
    _needs_server_name()
    invitation = invitations.invite(get_state(), _client(), None, email, role_names)
    click.echo(f"invited {invitation.email}")


def _needs_server_name() -> None:
    from flask import current_app

    if not current_app.config.get("SERVER_NAME"):
        raise click.ClickException(
            "links in mail need the site's address: set SERVER_NAME (e.g. "
            "FLASK_SERVER_NAME=accounts.example.com) for this command"
        )


@roles.command("create")
@click.argument("name")
@click.option("--description", default="")
def create_role(name: str, description: str) -> None:
    """Create a role."""
    role = get_state().roles.create(name, description)
    click.echo(f"created role {role.name}")


@roles.command("list")
def list_roles() -> None:
    """List roles and their permissions."""
    for role in get_state().roles.list():
        perms = ",".join(p.name for p in role.permissions) or "-"
        click.echo(f"{role.name}\tpermissions={perms}\t{role.description}")


@roles.command("delete")
@click.argument("name")
def delete_role(name: str) -> None:
    """Delete a role (users holding it lose it)."""
    get_state().roles.delete(name)
    click.echo(f"deleted role {name}")


@roles.command("grant-permission")
@click.argument("role")
@click.argument("permission")
def grant_permission(role: str, permission: str) -> None:
    """Let a role do PERMISSION (a "resource.action" string)."""
    get_state().roles.grant_permission(role, permission)
    click.echo(f"role {role} may now {permission}")


@portcullis.command("prune-audit")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Keep this many days.")
def prune_audit(days: int | None) -> None:
    """Delete audit events older than the retention period (PORTCULLIS_AUDIT_RETENTION_DAYS)."""
    state = get_state()
    keep = days or state.settings.audit_retention_days
    count = state.audit.prune(state.clock() - timedelta(days=keep))
    click.echo(f"deleted {count} audit event(s) older than {keep} days")


@portcullis.command("doctor")
def doctor() -> None:
    """Check this configuration against the security checklist; exit 1 on any failure."""
    from flask import current_app

    from .doctor import Status, examine

    findings = examine(current_app, get_state())
    width = max(len(f.item) for f in findings)
    for finding in findings:
        click.echo(
            f"{finding.status.upper():4}  {finding.item:<{width}}  {finding.message}"
            f"  [{finding.standard}]"
        )
    failed = sum(f.status is Status.FAIL for f in findings)
    warned = sum(f.status is Status.WARN for f in findings)
    click.echo(f"{len(findings) - failed - warned} passed, {warned} warnings, {failed} failed")
    if failed:
        sys.exit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(roles)
    app.cli.add_command(portcullis)
