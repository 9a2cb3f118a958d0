"""Invitations: an admin invites an address with roles; the invitee follows a single-use,
expiring link, chooses a username and password, and starts signed in with those roles and a
confirmed address, on invite-only sites too. Refusals: not admin, no recent password, no
CSRF token, an address with an account, and expired, used, withdrawn, replaced or made-up
links."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event

from .conftest import AppFactory, FakeClock, Outbox, csrf_token, login, make_user, signed_in
from .rows import count, events

NEW_PASSWORD = "a long passphrase for grace"
LINK = re.compile(r"https?://[^/\s]+(/invitation/[A-Za-z0-9_-]+)")


@pytest.fixture
def console(app: Flask, console: FlaskClient) -> FlaskClient:
    """The admin console (conftest's), on a site that has an editor role to invite with."""
    with app.app_context():
        get_state(app).roles.ensure("editor")
    return console


def invite(client: FlaskClient, email: str, *roles: str) -> str:
    """Fill in the invitation form; return the page after it."""
    token = csrf_token(client, "/admin/invitations")
    data: dict[str, object] = {"csrf_token": token, "email": email, "roles": list(roles)}
    response = client.post("/admin/invitations", data=data)
    if response.status_code == 302:
        response = client.get(response.headers["Location"])
    return html.unescape(response.get_data(as_text=True))


def link_in(outbox: Outbox, address: str, number: int = 1) -> str:
    mail = outbox.wait_for(address, number)[number - 1]
    found = LINK.search(mail.text)
    assert found, mail.text
    return found.group(1)


def accept(client: FlaskClient, path: str, username: str = "grace") -> int:
    token = csrf_token(client, path)
    data = {
        "csrf_token": token,
        "username": username,
        "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD,
    }
    return client.post(path, data=data).status_code


def test_invite_accept_and_start_signed_in_with_the_roles(
    app: Flask, console: FlaskClient, outbox: Outbox
) -> None:
    page = invite(console, "grace@example.com", "editor")
    assert "Invited grace@example.com." in page
    assert "editor" in page  # pending, listed with its roles
    path = link_in(outbox, "grace@example.com")
    invitee = app.test_client()
    form = invitee.get(path)
    assert form.status_code == 200
    assert form.headers["Referrer-Policy"] == "no-referrer"
    assert accept(invitee, path) == 302
    assert signed_in(invitee)
    with app.app_context():
        grace = get_state(app).accounts.get_by_identity("grace")
        assert grace is not None
        assert grace.email == "grace@example.com"
        assert grace.email_verified
        assert [role.name for role in grace.roles] == ["editor"]
    assert "No pending invitations." in invite_page(console)
    assert app.test_client().get(path).status_code == 400  # single use
    assert events(app, Event.INVITATION_SENT)[0][1]["actor"] > 0


def invite_page(client: FlaskClient) -> str:
    return client.get("/admin/invitations").get_data(as_text=True)


def test_invitations_work_when_registration_is_closed(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app("closed", clock=clock, PORTCULLIS_REGISTRATION=False)
    make_user(app, "root", "root@example.com", roles=("admin",))
    console = app.test_client()
    login(console, "root")
    assert console.get("/register").status_code == 404
    invite(console, "grace@example.com")
    invitee = app.test_client()
    assert accept(invitee, link_in(outbox, "grace@example.com")) == 302
    assert signed_in(invitee)


def test_an_address_with_an_account_is_told_to_the_admin_only(
    app: Flask, console: FlaskClient, outbox: Outbox, user: int
) -> None:
    page = invite(console, "ADA@example.com")
    assert "An account already has this address." in page
    assert outbox.to("ada@example.com") == []
    assert count(app, "invitations") == 0


def test_expired_resent_and_withdrawn_links_are_refused(
    app: Flask, console: FlaskClient, clock: FakeClock, outbox: Outbox
) -> None:
    invite(console, "grace@example.com")
    first = link_in(outbox, "grace@example.com")
    [pending_id] = pending_ids(app)
    act(console, pending_id, "resend")
    second = link_in(outbox, "grace@example.com", 2)
    assert first != second
    assert app.test_client().get(first).status_code == 400  # replaced by the newer one
    assert app.test_client().get(second).status_code == 200
    act(console, pending_id, "revoke")
    assert app.test_client().get(second).status_code == 400
    invite(console, "hal@example.com")
    late = link_in(outbox, "hal@example.com")
    clock.advance(days=8)
    assert app.test_client().get(late).status_code == 410
    assert app.test_client().get("/invitation/made-up-token").status_code == 400


def pending_ids(app: Flask) -> list[int]:
    with app.app_context():
        return [invitation.id for invitation in get_state(app).invitations.pending()]


def act(client: FlaskClient, invitation_id: int, action: str) -> None:
    token = csrf_token(client, "/admin/invitations")
    response = client.post(
        f"/admin/invitations/{invitation_id}/{action}", data={"csrf_token": token}
    )
    assert response.status_code == 302


def test_a_refused_username_keeps_the_invitation(
    app: Flask, console: FlaskClient, outbox: Outbox, user: int
) -> None:
    invite(console, "grace@example.com")
    path = link_in(outbox, "grace@example.com")
    invitee = app.test_client()
    assert accept(invitee, path, username="ada") == 422  # taken
    assert not signed_in(invitee)
    assert accept(invitee, path) == 302


def test_only_admins_may_invite(app: Flask, user: int) -> None:
    ada = app.test_client()
    login(ada)
    assert ada.get("/admin/invitations").status_code == 403
    token = csrf_token(ada, "/account")
    data = {"csrf_token": token, "email": "x@example.com"}
    assert ada.post("/admin/invitations", data=data).status_code == 403
    assert ada.post("/admin/invitations/1/revoke", data={"csrf_token": token}).status_code == 403


def test_inviting_wants_csrf_and_a_recent_password(
    app: Flask, console: FlaskClient, clock: FakeClock, outbox: Outbox
) -> None:
    assert console.post("/admin/invitations", data={"email": "x@example.com"}).status_code == 400
    token = csrf_token(console, "/admin/invitations")
    clock.advance(seconds=get_state(app).settings.fresh_login_window + 1)
    data = {"csrf_token": token, "email": "x@example.com"}
    response = console.post("/admin/invitations", data=data)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/reauthenticate")
    assert count(app, "invitations") == 0


def test_the_cli_invites_with_roles(app: Flask, runner: FlaskCliRunner, outbox: Outbox) -> None:
    with app.app_context():
        get_state(app).roles.ensure("editor")
    refused = runner.invoke(args=["users", "invite", "grace@example.com"])
    assert refused.exit_code == 1
    assert "SERVER_NAME" in refused.output
    app.config["SERVER_NAME"] = "localhost"
    done = runner.invoke(args=["users", "invite", "grace@example.com", "--role", "editor"])
    assert done.exit_code == 0, done.output
    path = link_in(outbox, "grace@example.com")
    invitee = app.test_client()
    assert accept(invitee, path) == 302
    assert events(app, Event.INVITATION_SENT)[0][1]["actor"] == "cli"
