"""What an administrator does to an account (usecases/admin.py), through the CLI that shares
it with the console: each action's audit row names who acted, the owner is told by mail
where it concerns them, and no action leaves the site without an active administrator."""

from __future__ import annotations

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.exceptions import InvalidCredentials, LastAdmin, Throttled
from flask_portcullis.usecases import admin
from flask_portcullis.usecases.client import Client

from .api_client import assert_invalid_token, assert_problem, get, refresh
from .conftest import PASSWORD, LimitedAppFactory, Outbox, login, make_user, signed_in
from .rows import events, get_user, session_count


def invoke(runner: FlaskCliRunner, *args: str) -> Result:
    result: Result = runner.invoke(args=["users", *args])
    return result


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(result: Result, words: str) -> None:
    assert result.exit_code == 1, result.output
    assert words in result.output, result.output


def as_admin(app: Flask, actor: int, action: str, user_id: int, *args: object) -> object:
    """Run one admin use case as the console will: with the acting admin's id."""
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(user_id)
        assert user is not None
        client = Client(ip="198.51.100.7", user_agent="Console/1", at=state.clock())
        return getattr(admin, action)(state, client, actor, user, *args)


# -- the last administrator -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("remove-role", "root", "admin"), ("deactivate", "root"), ("delete", "root", "--yes")]
)
def test_the_last_admin_cannot_be_taken_away(
    app: Flask, runner: FlaskCliRunner, args: tuple[str, ...]
) -> None:
    root = make_user(app, "root", "root@example.com", roles=("admin",))
    refused(invoke(runner, *args), "last active administrator")
    with app.app_context():
        user = get_state(app).accounts.get(root)
        assert user is not None
        assert user.active
        assert [role.name for role in user.roles] == ["admin"]


def test_an_admin_cannot_remove_themselves_when_they_are_the_last(app: Flask) -> None:
    root = make_user(app, "root", "root@example.com", roles=("admin",))
    for action, args in (("remove_role", ("admin",)), ("set_active", (False,)), ("delete", ())):
        with pytest.raises(LastAdmin):
            as_admin(app, root, action, root, *args)
    assert get_user(app, root) is not None


def test_with_a_second_active_admin_the_first_may_go(app: Flask, runner: FlaskCliRunner) -> None:
    make_user(app, "root", "root@example.com", roles=("admin",))
    make_user(app, "ops", "ops@example.com", roles=("admin",))
    ok(invoke(runner, "deactivate", "ops"))  # root remains
    refused(invoke(runner, "remove-role", "root", "admin"), "last active administrator")
    ok(invoke(runner, "activate", "ops"))
    assert "no longer has role admin" in ok(invoke(runner, "remove-role", "root", "admin"))


# -- each action: its audit row, its mail, its effect ---------------------------------------


def test_role_changes_are_audited_with_the_actor_and_mailed(
    app: Flask, outbox: Outbox, user: int
) -> None:
    root = make_user(app, "root", "root@example.com", roles=("admin",))
    with app.app_context():
        get_state(app).roles.ensure("editor")
    assert as_admin(app, root, "grant_role", user, "editor") is True
    assert as_admin(app, root, "grant_role", user, "editor") is False  # had it: nothing again
    assert as_admin(app, root, "remove_role", user, "editor") is True
    assert events(app, Event.ROLE_GRANTED)[-1] == (user, {"role": "editor", "actor": root})
    assert events(app, Event.ROLE_REMOVED) == [(user, {"role": "editor", "actor": root})]
    mails = outbox.wait_for("ada@example.com", 2)
    assert "you now have the role editor" in mails[0].text
    assert "you no longer have the role editor" in mails[1].text
    assert "An administrator" in mails[0].subject


def test_deactivation_signs_the_open_browser_out_and_stops_its_api_tokens(
    app: Flask, runner: FlaskCliRunner, outbox: Outbox, user: int
) -> None:
    browser = app.test_client()
    login(browser)
    api = app.test_client().post("/api/v1/login", json={"identity": "ada", "password": PASSWORD})
    pair = api.get_json()
    ok(invoke(runner, "deactivate", "ada"))
    assert not signed_in(browser)
    assert_problem(refresh(app.test_client(), pair["refresh_token"]), 400, "token_invalid")
    assert_invalid_token(get(app.test_client(), "/me", token=pair["access_token"]))
    assert events(app, Event.ACCOUNT_DEACTIVATED) == [(user, {"actor": "cli"})]
    assert "it is deactivated" in outbox.wait_for("ada@example.com")[0].text
    ok(invoke(runner, "activate", "ada"))
    assert login(app.test_client()).status_code == 302


def test_ending_every_session_and_resetting_second_factors(
    app: Flask, runner: FlaskCliRunner, outbox: Outbox, user: int
) -> None:
    phone, laptop = app.test_client(), app.test_client()
    login(phone)
    login(laptop)
    assert "ended 2 session(s)" in ok(invoke(runner, "revoke-sessions", "ada"))
    assert not signed_in(phone)
    assert not signed_in(laptop)
    login(phone)
    assert "ended 1 session(s)" in ok(invoke(runner, "reset-two-factor", "ada"))
    assert session_count(app, user) == 0
    assert events(app, Event.TWO_FACTOR_DISABLED) == [(user, {"reset": True, "actor": "cli"})]
    texts = [mail.text for mail in outbox.wait_for("ada@example.com", 2)]
    assert any("every device of yours was signed out" in text for text in texts)
    assert any("two-factor sign-in and passkeys were removed" in text for text in texts)


def test_unlock_lifts_the_sign_in_lock(limited_app: LimitedAppFactory) -> None:
    app = limited_app(
        PORTCULLIS_LOGIN_FREE_FAILURES=99,
        PORTCULLIS_LOGIN_LIMIT_PER_CLIENT="1000/minute",
        PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT="1000/minute",
    )
    user_id = make_user(app)
    root = make_user(app, "root", "root@example.com", roles=("admin",))
    with app.app_context():
        authenticator = get_state(app).authenticator
        for _ in range(100):
            with pytest.raises((InvalidCredentials, Throttled)):
                authenticator.authenticate("ada", "wrong password", client="192.0.2.70")
        with pytest.raises(Throttled):
            authenticator.authenticate("ada", PASSWORD, client="192.0.2.71")
    as_admin(app, root, "unlock", user_id)
    with app.app_context():
        assert get_state(app).authenticator.authenticate("ada", PASSWORD, client="192.0.2.71")
    assert events(app, Event.ACCOUNT_UNLOCKED) == [(user_id, {"actor": root})]


def test_links_are_mailed_to_the_owner_never_shown_to_the_admin(app: Flask, outbox: Outbox) -> None:
    user_id = make_user(app, verified=False)
    root = make_user(app, "root", "root@example.com", roles=("admin",))
    with app.test_request_context():
        assert as_admin(app, root, "resend_verification", user_id) is True
        as_admin(app, root, "send_password_reset", user_id)
    mails = outbox.wait_for("ada@example.com", 2)
    assert "/verify-email/" in mails[0].text
    assert "/reset-password/" in mails[1].text
    assert events(app, Event.VERIFICATION_SENT) == [(user_id, {"actor": root})]
    assert events(app, Event.PASSWORD_RESET_SENT) == [(user_id, {"actor": root})]


def test_links_from_the_shell_need_the_sites_address(
    app: Flask, runner: FlaskCliRunner, outbox: Outbox, user: int
) -> None:
    refused(invoke(runner, "send-reset", "ada"), "SERVER_NAME")
    refused(invoke(runner, "resend-verification", "ada"), "SERVER_NAME")
    assert outbox.to("ada@example.com") == []


def test_a_deleted_account_is_told_first_and_audited_with_the_actor(
    app: Flask, runner: FlaskCliRunner, outbox: Outbox, user: int
) -> None:
    ok(invoke(runner, "delete", "ada", "--yes"))
    assert get_user(app, user) is None
    assert events(app, Event.ACCOUNT_DELETED) == [(user, {"actor": "cli"})]
    assert "it is deleted" in outbox.wait_for("ada@example.com")[0].text
