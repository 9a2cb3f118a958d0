"""Two-factor policy: required for some roles, notices on every change, admin reset."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state

from .conftest import PASSWORD, AppFactory, FakeClock, Outbox, login, make_user, submit
from .totp import code_for

SECRET = re.compile(r'class="secret">([A-Z2-7]+)<')


def enable(client: FlaskClient, clock: FakeClock) -> list[str]:
    page = client.get("/account/two-factor").get_data(as_text=True)
    match = SECRET.search(page)
    assert match, page
    code = code_for(match.group(1), clock)
    response = submit(client, "/account/two-factor", {"code": code})
    assert response.status_code == 200
    return re.findall(r"<code>([a-z0-9-]+)</code>", response.get_data(as_text=True))


def test_a_role_that_requires_two_factor_sends_its_holders_to_set_it_up(
    make_demo_app: AppFactory, clock: FakeClock
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_REQUIRE_2FA_FOR_ROLES=["admin"])
    make_user(app, roles=("admin",))
    make_user(app, "bob", "bob@example.com")
    admin, bob = app.test_client(), app.test_client()
    login(admin)
    login(bob, "bob")
    for path in ("/account", "/admin/", "/"):
        response = admin.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/account/two-factor"
    assert bob.get("/account").status_code == 200  # not his role
    enable(admin, clock)
    assert admin.get("/admin/").status_code == 200


def test_factor_changes_are_mailed_to_the_owner(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, outbox: Outbox
) -> None:
    codes = enable(auth_client, clock)
    [on] = outbox.wait_for("ada@example.com")
    assert "turned on" in on.text
    submit(auth_client, "/logout", {})
    login(auth_client)
    submit(auth_client, "/login/two-factor", {"code": codes[0]})
    used = outbox.wait_for("ada@example.com", 2)[1]
    assert "recovery code was used" in used.text
    assert "9 unused codes" in used.text
    submit(auth_client, "/account/two-factor", {"password": PASSWORD, "action": "disable"})
    off = outbox.wait_for("ada@example.com", 3)[2]
    assert "turned off" in off.text


def test_an_admin_resets_a_second_factor_by_forcing_re_enrolment(
    app: Flask, auth_client: FlaskClient, clock: FakeClock
) -> None:
    enable(auth_client, clock)
    result = app.test_cli_runner().invoke(args=["users", "reset-two-factor", "ada"])
    assert result.exit_code == 0, result.output
    assert "is off" in result.output
    assert auth_client.get("/account").status_code == 302  # signed out everywhere
    assert login(auth_client).headers["Location"] == "/"  # one step again
    with app.app_context():
        user = get_state(app).accounts.get_by_identity("ada")
        assert user is not None
        assert not get_state(app).two_factor.is_enabled(user)
        events = [e.event for e in get_state(app).audit.recent(user.id)]
    assert "two-factor-disabled" in events


def test_the_pending_setup_secret_is_not_readable_in_the_cookie(
    app: Flask, auth_client: FlaskClient
) -> None:
    page = auth_client.get("/account/two-factor").get_data(as_text=True)
    match = SECRET.search(page)
    assert match
    cookie = auth_client.get_cookie("session")
    assert cookie is not None
    contents = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    assert match.group(1) not in str(contents)
    assert match.group(1).lower() not in str(contents).lower()
