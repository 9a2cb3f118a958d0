"""The JSON API's account: ``/me``, password change and sessions."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from .api_client import (
    API,
    NEW_PASSWORD,
    assert_problem,
    auth,
    body_of,
    error_fields,
    get,
    post,
    refresh,
    sign_in,
    sign_in_status,
    wait_for_mail,
)
from .conftest import (
    PASSWORD,
    Outbox,
    signed_in,
)
from .rows import recent_events

# -- /me ---------------------------------------------------------------------------------------


def test_me_returns_the_account(api: FlaskClient, user: int) -> None:
    response = get(api, "/me", token=sign_in(api)["access_token"])
    assert response.status_code == 200
    me = body_of(response)
    assert me == {
        "id": user,
        "username": "ada",
        "email": "ada@example.com",
        "email_verified": False,
        "created_at": me["created_at"],
        "roles": [],
    }
    assert datetime.fromisoformat(me["created_at"]).tzinfo is not None


def test_me_without_a_token_asks_for_one(api: FlaskClient, user: int) -> None:
    response = get(api, "/me")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic YWRhOnB3",
        "Token abc",
        "Bearer not.a.jwt",
        "Bearer abc",
        # A header segment of nested JSON arrays: deep enough to exhaust a recursive parser.
        "Bearer " + base64.urlsafe_b64encode(b"[" * 1200).decode().rstrip("=") + ".e30.sig",
        "Bearer " + "e" * 2000 + ".e30.sig",
    ],
)
def test_me_with_a_bad_authorization_header_is_401(
    api: FlaskClient, user: int, header: str
) -> None:
    response = api.get(API + "/me", headers={"Authorization": header})
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')


def test_the_bearer_scheme_is_case_insensitive(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    response = api.get(API + "/me", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


# -- password change ---------------------------------------------------------------------------


def test_password_change_ends_every_session_and_refresh_token(
    app: Flask, api: FlaskClient, web: FlaskClient, user: int, outbox: Outbox
) -> None:
    pair = sign_in(api)
    other = sign_in(api)
    response = post(
        api,
        "/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        token=pair["access_token"],
    )
    assert response.status_code == 204
    assert_problem(refresh(api, pair["refresh_token"]), 400, "token_invalid")
    assert_problem(refresh(api, other["refresh_token"]), 400, "token_invalid")
    assert not signed_in(web)
    assert sign_in_status(api, "ada", PASSWORD) == 401
    sign_in(api, "ada", NEW_PASSWORD)
    assert "password-changed" in recent_events(app, user)
    wait_for_mail(outbox, "ada@example.com", lambda mail: "password was changed" in mail.subject)


def test_password_change_needs_the_current_password(api: FlaskClient, user: int) -> None:
    pair = sign_in(api)
    body = {"current_password": "not the password", "new_password": NEW_PASSWORD}
    response = post(api, "/password", body, token=pair["access_token"])
    # A field error, not a 401: the token is fine, and a client must not drop it.
    problem = assert_problem(response, 422)
    assert error_fields(problem) == {"current_password"}
    assert "WWW-Authenticate" not in response.headers
    assert refresh(api, pair["refresh_token"]).status_code == 200  # nothing ended
    sign_in(api)


def test_password_change_applies_the_policy(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    body = {"current_password": PASSWORD, "new_password": "short"}
    problem = assert_problem(post(api, "/password", body, token=token), 422)
    assert error_fields(problem) == {"new_password"}
    assert all(error["message"] for error in problem["errors"])
    sign_in(api)


def test_password_change_needs_a_token(api: FlaskClient, user: int) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_problem(post(api, "/password", body), 401, "unauthorized")
    sign_in(api)


# -- sessions ----------------------------------------------------------------------------------


def test_sessions_lists_browsers_and_api_clients_with_the_current_one(
    api: FlaskClient, web: FlaskClient, user: int
) -> None:
    phone = sign_in(api, **{"User-Agent": "PhoneApp/1.0"})
    sign_in(api, **{"User-Agent": "Laptop/2.0"})
    response = get(api, "/sessions", token=phone["access_token"])
    assert response.status_code == 200
    sessions = body_of(response)["sessions"]
    assert len(sessions) == 3  # the browser and two API clients
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "PhoneApp/1.0"
    assert {s["user_agent"] for s in sessions} >= {"PhoneApp/1.0", "Laptop/2.0"}
    for session in sessions:
        assert session["ip"] == "127.0.0.1"
        assert datetime.fromisoformat(session["created_at"]).tzinfo is not None


def test_ending_one_session(api: FlaskClient, web: FlaskClient, user: int) -> None:
    phone = sign_in(api, **{"User-Agent": "PhoneApp/1.0"})
    laptop = sign_in(api, **{"User-Agent": "Laptop/2.0"})
    sessions = body_of(get(api, "/sessions", token=phone["access_token"]))["sessions"]
    laptop_id = next(s["id"] for s in sessions if s["user_agent"] == "Laptop/2.0")
    response = api.delete(f"{API}/sessions/{laptop_id}", headers=auth(phone["access_token"]))
    assert response.status_code == 204
    assert_problem(refresh(api, laptop["refresh_token"]), 400, "token_invalid")
    assert refresh(api, phone["refresh_token"]).status_code == 200
    assert signed_in(web)
    # Gone now: 404, like an id that never existed.
    again = api.delete(f"{API}/sessions/{laptop_id}", headers=auth(phone["access_token"]))
    assert_problem(again, 404, "not_found")
    assert_problem(
        api.delete(f"{API}/sessions/{'0' * 64}", headers=auth(phone["access_token"])), 404
    )


def test_ending_the_browser_session_from_the_api(
    api: FlaskClient, web: FlaskClient, user: int
) -> None:
    token = sign_in(api, **{"User-Agent": "PhoneApp/1.0"})["access_token"]
    sessions = body_of(get(api, "/sessions", token=token))["sessions"]
    browser = next(s["id"] for s in sessions if s["user_agent"] != "PhoneApp/1.0")
    assert api.delete(f"{API}/sessions/{browser}", headers=auth(token)).status_code == 204
    assert not signed_in(web)


def test_another_users_session_cannot_be_ended(api: FlaskClient, user: int, grace: int) -> None:
    ada = sign_in(api, "ada")
    theirs = sign_in(api, "grace")
    grace_session = body_of(get(api, "/sessions", token=theirs["access_token"]))["sessions"][0]
    response = api.delete(
        f"{API}/sessions/{grace_session['id']}", headers=auth(ada["access_token"])
    )
    assert_problem(response, 404, "not_found")
    assert refresh(api, theirs["refresh_token"]).status_code == 200


def test_sessions_need_a_token(api: FlaskClient, user: int) -> None:
    assert_problem(get(api, "/sessions"), 401, "unauthorized")
    assert_problem(api.delete(f"{API}/sessions/{'0' * 64}"), 401, "unauthorized")
