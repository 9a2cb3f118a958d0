"""Server-side sessions: recorded, checked on every request, ended on the server."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state
from flask_portcullis.sessions import SessionRecord
from flask_portcullis.web.keys import SESSION_KEY

from .conftest import (
    PASSWORD,
    AppFactory,
    FakeClock,
    deactivate,
    login,
    make_app,
    make_user,
    signed_in,
    submit,
)
from .rows import get_user
from .stores import STORES, same_store, store_config

UA = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


@pytest.fixture(params=STORES)
def app(request: pytest.FixtureRequest, make_demo_app: AppFactory, clock: FakeClock) -> Flask:
    """The demo app on each session store in turn: every promise here holds for all three."""
    return make_demo_app("", clock=clock, **store_config(request, request.param))


def cookie_session(app: Flask, client: FlaskClient) -> dict[str, object]:
    cookie = client.get_cookie("session")
    assert cookie is not None
    data: dict[str, object] = app.session_interface.get_signing_serializer(app).loads(  # type: ignore[attr-defined]
        cookie.value
    )
    return data


def records(app: Flask, user_id: int) -> list[SessionRecord]:
    with app.app_context():
        return list(get_state(app).sessions.list_for(user_id))


def test_sign_in_records_the_device(app: Flask, client: FlaskClient, user: int) -> None:
    client.environ_base["HTTP_USER_AGENT"] = UA
    login(client)
    [record] = records(app, user)
    assert record.user_agent == UA
    assert record.ip == "127.0.0.1"
    assert not record.remember
    session_id = cookie_session(app, client)[SESSION_KEY]
    assert isinstance(session_id, str)
    assert len(session_id) >= 43  # 256 bits, url-safe base64
    # Only the digest is stored: the table cannot be replayed.
    assert record.id == hashlib.sha256(session_id.encode()).hexdigest()
    assert session_id not in record.id


def test_every_sign_in_gets_a_new_session_and_drops_pre_login_state(
    app: Flask, client: FlaskClient, user: int
) -> None:
    with client.session_transaction() as planted:
        planted["planted"] = "by an attacker"
        planted[SESSION_KEY] = "attacker-chosen-id"
    login(client)
    first = cookie_session(app, client)
    assert "planted" not in first
    assert first[SESSION_KEY] != "attacker-chosen-id"
    submit(client, "/logout", {})
    login(client)
    second = cookie_session(app, client)
    assert second[SESSION_KEY] != first[SESSION_KEY]
    assert len(records(app, user)) == 1


def test_old_cookie_is_anonymous_after_logout(app: Flask, client: FlaskClient, user: int) -> None:
    login(client)
    stolen = client.get_cookie("session")
    assert stolen is not None
    submit(client, "/logout", {})
    replay = app.test_client()
    replay.set_cookie("session", stolen.value)
    assert not signed_in(replay)
    assert records(app, user) == []


def test_idle_timeout(clock: FakeClock, auth_client: FlaskClient) -> None:
    clock.advance(minutes=29)
    assert signed_in(auth_client)  # activity resets the idle timer
    clock.advance(minutes=29)
    assert signed_in(auth_client)
    clock.advance(minutes=31)
    assert not signed_in(auth_client)


def test_absolute_lifetime_ends_even_an_active_session(
    clock: FakeClock, auth_client: FlaskClient
) -> None:
    for _ in range(12 * 3 - 1):
        clock.advance(minutes=20)
        assert signed_in(auth_client)
    clock.advance(minutes=20)
    assert not signed_in(auth_client)


def test_the_session_timeouts_are_configurable(tmp_path: Path, clock: FakeClock) -> None:
    app = make_app(
        tmp_path,
        clock,
        PORTCULLIS_SESSION_IDLE_TIMEOUT=120,
        PORTCULLIS_SESSION_LIFETIME=600,
        PORTCULLIS_REMEMBER_LIFETIME=3600,
    )
    make_user(app)
    idle, busy, remembered = (app.test_client() for _ in range(3))
    for client in (idle, busy):
        login(client)
    login(remembered, remember=True)
    for second in range(100, 600, 100):  # busy every 100 s, within the idle limit
        clock.advance(seconds=100)
        assert signed_in(busy)
        if second in (100, 300):
            # idle seen at 100 s, then 200 s without a request: longer than 120 s
            assert signed_in(idle) is (second == 100)
    clock.advance(seconds=101)  # 601 s after sign-in: the absolute 600 s end even a busy one
    assert not signed_in(busy)
    clock.advance(seconds=3599 - 601)
    assert signed_in(remembered)  # neither the idle nor the session limit applies
    clock.advance(seconds=2)
    assert not signed_in(remembered)


def test_remember_me_makes_a_persistent_cookie_and_a_long_session(
    app: Flask, clock: FakeClock, client: FlaskClient, user: int
) -> None:
    login(client, remember=True)
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.expires is not None
    # The cookie lasts as long as the record: 30 days (Flask dates it by the real clock).
    in_30_days = datetime.now(UTC) + timedelta(days=30)
    assert abs(cookie.expires.replace(tzinfo=UTC) - in_30_days) < timedelta(minutes=1)
    [record] = records(app, user)
    assert record.remember
    clock.advance(hours=6)  # far past the idle timeout
    assert signed_in(client)
    clock.advance(days=29)
    assert signed_in(client)
    clock.advance(days=2)
    assert not signed_in(client)


def test_without_remember_me_the_cookie_ends_with_the_browser(auth_client: FlaskClient) -> None:
    cookie = auth_client.get_cookie("session")
    assert cookie is not None
    assert cookie.expires is None


def test_cookie_flags(app: Flask, client: FlaskClient, user: int) -> None:
    response = login(client)
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert "Secure" in set_cookie


@pytest.mark.parametrize(
    "config", [{"DEBUG": True}, {"PORTCULLIS_SECURE_COOKIES": False}], ids=["debug", "opt-out"]
)
def test_cookie_is_not_secure_in_debug_mode_or_when_turned_off(
    tmp_path: Path, config: dict[str, bool]
) -> None:
    app = make_app(tmp_path, None, **config)
    make_user(app)
    client = app.test_client()
    assert "Secure" not in login(client).headers["Set-Cookie"]
    assert make_app(tmp_path / "default").config["SESSION_COOKIE_SECURE"] is True


def test_password_change_ends_other_sessions(app: Flask, user: int) -> None:
    phone, laptop = app.test_client(), app.test_client()
    login(phone)
    login(laptop)
    before = cookie_session(app, laptop)[SESSION_KEY]
    response = submit(
        laptop,
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "new_password_confirm": "a brand new passphrase",
        },
    )
    assert response.status_code == 302
    assert not signed_in(phone)
    assert signed_in(laptop)
    assert cookie_session(app, laptop)[SESSION_KEY] != before  # rotated on privilege change
    assert len(records(app, user)) == 1


def test_ending_a_record_on_the_server_signs_the_device_out(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    with app.app_context():
        assert get_state(app).sessions.end_all(user) == 1
    assert not signed_in(auth_client)


def test_deactivation_ends_sessions_at_once(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    deactivate(app, user)
    assert not signed_in(auth_client)


def test_sessions_survive_an_app_restart(
    tmp_path: Path, app: Flask, clock: FakeClock, user: int
) -> None:
    client = app.test_client()
    login(client)
    cookie = client.get_cookie("session")
    assert cookie is not None
    restarted = make_app(tmp_path, clock, **same_store(app))
    fresh = restarted.test_client()
    fresh.set_cookie("session", cookie.value)
    assert signed_in(fresh)


def test_each_device_has_its_own_session(app: Flask, user: int) -> None:
    for agent in ("Phone/1", "Laptop/2"):
        device = app.test_client()
        device.environ_base["HTTP_USER_AGENT"] = agent
        login(device)
    assert sorted(r.user_agent for r in records(app, user)) == ["Laptop/2", "Phone/1"]


@pytest.mark.parametrize("agent", ["nul\x00agent", "x" * 5000, "\u202eevil"])
def test_odd_user_agents_are_stored_safely(app: Flask, user: int, agent: str) -> None:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    assert login(client).status_code == 302
    [record] = records(app, user)
    assert "\x00" not in record.user_agent
    assert len(record.user_agent) <= 512


def test_session_for_another_user_id_is_refused(app: Flask, client: FlaskClient) -> None:
    ada = make_user(app)
    make_user(app, "bob", "bob@example.com")
    login(client, "bob")
    with client.session_transaction() as forged:
        forged["_user_id"] = str(ada)  # keep bob's session id, claim to be ada
    assert "You are not signed in." in client.get("/").get_data(as_text=True)


def test_password_change_is_all_or_nothing(
    app: Flask, auth_client: FlaskClient, user: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If ending the sessions fails, the new password must not be stored either."""
    before = get_user(app, user)
    assert before is not None
    state = get_state(app)

    def broken(user_id: int) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(state.sessions, "stage_end_all", broken)
    with pytest.raises(RuntimeError):
        submit(
            auth_client,
            "/account/password",
            {
                "current_password": PASSWORD,
                "new_password": "a brand new passphrase",
                "new_password_confirm": "a brand new passphrase",
            },
        )
    after = get_user(app, user)
    assert after is not None
    assert after.password_hash == before.password_hash
