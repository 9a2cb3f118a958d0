"""The admin console's user pages and actions (``/admin/users``, ``/admin/users/<id>``): who may
see and act, what each action needs (CSRF, a recent password), and what it does."""

from __future__ import annotations

import html

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.web.admin import ACTIONS

from .conftest import FakeClock, Outbox, csrf_token, login, make_user, signed_in
from .rows import events, get_user, session_count

EVERY_ACTION = [*ACTIONS, "delete"]


def page_of(client: FlaskClient, user_id: int) -> str:
    return f"/admin/users/{user_id}"


def act(client: FlaskClient, user_id: int, action: str, **data: str) -> str:
    """Press an action's button on the user's page; return the page's text after it."""
    token = csrf_token(client, page_of(client, user_id))
    response = client.post(f"/admin/users/{user_id}/{action}", data={"csrf_token": token, **data})
    assert response.status_code == 302, response.status_code
    return client.get(response.headers["Location"]).get_data(as_text=True)


# -- who may -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", EVERY_ACTION)
def test_a_signed_in_non_admin_gets_403_on_every_page_and_action(
    app: Flask, root: int, user: int, action: str
) -> None:
    ada = app.test_client()
    login(ada)
    assert ada.get("/admin/users").status_code == 403
    assert ada.get(page_of(ada, root)).status_code == 403
    token = csrf_token(ada, "/account")  # a valid token of ada's own: still no
    data = {"csrf_token": token, "role": "admin"}
    assert ada.post(f"/admin/users/{root}/{action}", data=data).status_code == 403
    assert get_user(app, root) is not None


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask, root: int) -> None:
    client = app.test_client()
    response = client.get(f"/admin/users/{root}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    token = csrf_token(client, "/login")
    response = client.post(f"/admin/users/{root}/deactivate", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_an_action_without_its_csrf_token_changes_nothing(
    app: Flask, console: FlaskClient, user: int
) -> None:
    assert console.post(f"/admin/users/{user}/deactivate").status_code == 400
    ada = get_user(app, user)
    assert ada is not None
    assert ada.active


def test_an_action_wants_a_recent_password(
    app: Flask, console: FlaskClient, clock: FakeClock, user: int
) -> None:
    token = csrf_token(console, page_of(console, user))
    clock.advance(seconds=get_state(app).settings.fresh_login_window + 1)
    response = console.post(f"/admin/users/{user}/deactivate", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/reauthenticate")
    ada = get_user(app, user)
    assert ada is not None
    assert ada.active


def test_unknown_accounts_and_actions_are_404(console: FlaskClient, user: int) -> None:
    assert console.get("/admin/users/999999").status_code == 404
    token = csrf_token(console, page_of(console, user))
    assert (
        console.post(f"/admin/users/{user}/promote", data={"csrf_token": token}).status_code == 404
    )
    assert console.post("/admin/users/999999/unlock", data={"csrf_token": token}).status_code == 404


# -- what they show -------------------------------------------------------------------------


def test_the_user_page_shows_the_account_without_secrets(
    app: Flask, console: FlaskClient, user: int
) -> None:
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "Phone/1"
    login(phone)
    page = console.get(page_of(console, user)).get_data(as_text=True)
    for shown in ("ada@example.com", "Phone/1", "Signed in", "authenticator app: off"):
        assert shown in page, shown
    with app.app_context():
        stored = get_state(app).accounts.get(user)
        assert stored is not None
        assert stored.password_hash
        assert stored.password_hash not in page
    listing = console.get("/admin/users?q=ada").get_data(as_text=True)
    assert f'href="/admin/users/{user}"' in listing


# -- what they do ---------------------------------------------------------------------------


def test_granting_and_removing_a_role_is_audited_with_the_admin(
    app: Flask, console: FlaskClient, root: int, user: int
) -> None:
    with app.app_context():
        get_state(app).roles.ensure("editor")
    assert "ada now has editor" in act(console, user, "grant-role", role="editor")
    assert "ada no longer has editor" in act(console, user, "remove-role", role="editor")
    assert "There is no such role" in act(console, user, "grant-role", role="wizard")
    assert events(app, Event.ROLE_GRANTED)[-1] == (user, {"role": "editor", "actor": root})


def test_deactivating_signs_the_users_open_browser_out(
    app: Flask, console: FlaskClient, user: int, outbox: Outbox
) -> None:
    ada = app.test_client()
    login(ada)
    assert "ada is deactivated" in act(console, user, "deactivate")
    assert not signed_in(ada)
    assert login(app.test_client()).status_code != 302  # nor can it sign in again
    assert "it is deactivated" in outbox.wait_for("ada@example.com")[0].text
    assert "ada is active" in act(console, user, "activate")
    fresh = app.test_client()
    assert login(fresh).status_code == 302
    assert signed_in(fresh)


def test_sessions_factors_lock_and_links(
    app: Flask, console: FlaskClient, user: int, outbox: Outbox
) -> None:
    login(app.test_client())
    assert "Signed ada out of 1 session" in act(console, user, "end-sessions")
    assert session_count(app, user) == 0
    assert "second factors are removed" in act(console, user, "reset-factors")
    assert "may sign in again now" in act(console, user, "unlock")
    assert "reset link is on its way" in act(console, user, "send-reset")
    texts = [mail.text for mail in outbox.wait_for("ada@example.com", 3)]
    assert any("/reset-password/" in text for text in texts)


def test_the_last_admin_cannot_deactivate_or_delete_themselves(
    app: Flask, console: FlaskClient, root: int
) -> None:
    page = act(console, root, "deactivate")
    assert "last active administrator" in page
    page = act(console, root, "delete")
    assert "last active administrator" in page
    page = act(console, root, "remove-role", role="admin")
    assert "last active administrator" in page
    assert console.get("/admin/users").status_code == 200


def test_deleting_an_account(app: Flask, console: FlaskClient, root: int, user: int) -> None:
    token = csrf_token(console, page_of(console, user))
    response = console.post(f"/admin/users/{user}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/users")
    assert get_user(app, user) is None
    assert events(app, Event.ACCOUNT_DELETED) == [(user, {"actor": root})]
    listing = html.unescape(console.get("/admin/users").get_data(as_text=True))
    assert "ada's account is deleted." in listing


# -- finer permissions: support staff ------------------------------------------------------


def staff(app: Flask, *permissions: str) -> FlaskClient:
    """A signed-in account whose only role grants ``permissions``."""
    with app.app_context():
        roles = get_state(app).roles
        roles.ensure("support")
        for permission in permissions:
            roles.grant_permission("support", permission)
    make_user(app, "sam", "sam@example.com", roles=("support",))
    client = app.test_client()
    login(client, "sam")
    return client


def test_users_read_gives_a_read_only_view(app: Flask, root: int, user: int) -> None:
    sam = staff(app, "users.read")
    assert sam.get("/admin/users").status_code == 200
    page = sam.get(f"/admin/users/{user}").get_data(as_text=True)
    assert "ada@example.com" in page
    assert "Actions" not in page
    token = csrf_token(sam, "/account")
    for action in EVERY_ACTION:
        response = sam.post(f"/admin/users/{user}/{action}", data={"csrf_token": token})
        assert response.status_code == 403, action
    assert sam.get("/admin/audit").status_code == 403
    assert sam.get("/admin/audit.csv").status_code == 403
    ada = get_user(app, user)
    assert ada is not None
    assert ada.active


def test_users_write_lets_staff_act_and_audit_read_shows_the_log(
    app: Flask, root: int, user: int
) -> None:
    sam = staff(app, "users.read", "users.write", "audit.read")
    assert "ada is deactivated" in act(sam, user, "deactivate")
    assert sam.get("/admin/audit", query_string={"user": "ada"}).status_code == 200
    actor = events(app, Event.ACCOUNT_DEACTIVATED)[-1][1]["actor"]
    with app.app_context():
        found = get_state(app).accounts.get_by_identity("sam")
        assert found is not None
        assert actor == found.id
