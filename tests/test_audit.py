"""The security audit log: one row per security event (who, when in UTC, from where, a small
JSON detail), never a secret; its blinker signals; the user's activity page and export; the
retention CLI; and the sign-in notices that read it (new device, sign-in after failures)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from flask_portcullis import get_state, signals
from flask_portcullis.audit import DETAIL_MAX
from flask_portcullis.audit_events import LABELS, Event
from flask_portcullis.web.keys import SESSION_KEY

from .conftest import (
    PASSWORD,
    AppFactory,
    FakeClock,
    Outbox,
    csrf_token,
    login,
    make_user,
    submit,
)
from .host_app import create_host_app
from .rows import AuditRow, audit_rows, get_user

UA = "Mozilla/5.0 (X11; Linux x86_64) AuditBrowser/1.0"
IP = "198.51.100.23"
OTHER_IP = "203.0.113.50"
NEW_PASSWORD = "a fresh passphrase nobody guesses"
RESET_PASSWORD = "the reset gave me this passphrase"
WRONG_PASSWORD = "definitely not the right passphrase"
CLI_UA = "flask cli"
NOTICE = "New sign-in to your account"


# -- reading the table ---------------------------------------------------------------


def last(app: Flask, event: Event) -> AuditRow:
    found = audit_rows(app, event)
    assert found, f"no {event} event in {[r.event for r in audit_rows(app)]}"
    return found[-1]


def raw_rows(app: Flask) -> list[tuple[Any, ...]]:
    """Every column of every audit row, straight from the database."""
    with app.app_context():
        engine = get_state(app).db.engine
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql("SELECT * FROM audit_events")]


def as_device(client: FlaskClient, ip: str = IP, user_agent: str = UA) -> FlaskClient:
    client.environ_base.update(REMOTE_ADDR=ip, HTTP_USER_AGENT=user_agent)
    return client


def cli(runner: FlaskCliRunner, *args: str, input: str | None = None) -> Result:
    result: Result = runner.invoke(args=list(args), input=input)
    assert result.exit_code == 0, result.output
    return result


def token_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


# -- one row per action: a table ---------------------------------------------------


@dataclass
class World:
    app: Flask
    client: FlaskClient
    runner: FlaskCliRunner
    outbox: Outbox
    clock: FakeClock
    ada: int


@dataclass(frozen=True)
class Case:
    """Do ``act`` (returns the user id the event must carry); expect one ``event`` row."""

    event: Event
    act: Callable[[World], int | None]
    detail: dict[str, Any]
    web: bool = True  # from the test client's IP and browser; else the CLI's


def sign_in(w: World) -> int:
    assert login(w.client).status_code == 302
    return w.ada


def sign_in_remembered(w: World) -> int:
    assert login(w.client, remember=True).status_code == 302
    return w.ada


def wrong_password(w: World) -> int:
    assert login(w.client, password=WRONG_PASSWORD).status_code == 422
    return w.ada


def unknown_user(w: World) -> None:
    assert login(w.client, "nobody-here").status_code == 422


def deactivated(w: World) -> int:
    cli(w.runner, "users", "deactivate", "ada")
    response = login(w.client)
    assert response.status_code == 422
    assert "deactivated" in response.get_data(as_text=True)
    return w.ada


def sign_out(w: World) -> int:
    sign_in(w)
    assert submit(w.client, "/logout", {}).status_code == 302
    return w.ada


def second_device(w: World) -> FlaskClient:
    other = w.app.test_client()
    assert login(as_device(other, OTHER_IP, "Other/2.0")).status_code == 302
    return other


def revoke_one(w: World) -> int:
    sign_in(w)
    second_device(w)
    with w.app.app_context():
        records = get_state(w.app).sessions.list_for(w.ada)
        other = next(r.id for r in records if r.ip == OTHER_IP)
    assert submit(w.client, "/account/sessions", {"session": other}).status_code == 302
    return w.ada


def revoke_others(w: World) -> int:
    sign_in(w)
    second_device(w)
    second_device(w)
    assert submit(w.client, "/account/sessions", {"session": "others"}).status_code == 302
    return w.ada


def revoke_by_cli(w: World) -> int:
    sign_in(w)
    second_device(w)
    assert "ended 2 session(s)" in cli(w.runner, "users", "revoke-sessions", "ada").output
    return w.ada


def change_password(w: World) -> int:
    sign_in(w)
    data = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    assert submit(w.client, "/account/password", data).status_code == 302
    return w.ada


def reset_password(w: World) -> int:
    assert submit(w.client, "/forgot-password", {"email": "ada@example.com"}).status_code == 200
    [mail] = w.outbox.wait_for("ada@example.com")
    link = mail.link("/reset-password/")
    data = {"password": RESET_PASSWORD, "password_confirm": RESET_PASSWORD}
    assert submit(w.client, link, data).status_code == 302
    return w.ada


def request_email_change(w: World) -> int:
    sign_in(w)
    data = {"email": "new.ada@example.com", "password": PASSWORD}
    assert submit(w.client, "/account/email", data).status_code == 302
    return w.ada


def change_email(w: World) -> int:
    request_email_change(w)
    [mail] = w.outbox.wait_for("new.ada@example.com")
    assert submit(w.client, mail.link("/confirm-email/"), {}).status_code == 302
    return w.ada


def verify_email(w: World) -> int:
    sign_in(w)
    assert w.client.post("/verify-email", data={"csrf_token": csrf(w)}).status_code == 302
    [mail] = w.outbox.wait_for("ada@example.com")
    assert submit(w.client, mail.link("/verify-email/"), {}).status_code == 302
    return w.ada


def csrf(w: World) -> str:
    return csrf_token(w.client, "/account/password")


def register(w: World) -> int:
    data = {
        "username": "grace",
        "email": "grace@example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    assert submit(w.client, "/register", data).status_code == 302
    return user_id_of(w.app, "grace")


def user_id_of(app: Flask, identity: str) -> int:
    with app.app_context():
        user = get_state(app).accounts.get_by_identity(identity)
        assert user is not None
        return user.id


def create_by_cli(w: World) -> int:
    cli(
        w.runner,
        *("users", "create", "--username", "grace", "--email", "grace@example.com"),
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    return user_id_of(w.app, "grace")


def deactivate_by_cli(w: World) -> int:
    cli(w.runner, "users", "deactivate", "ada")
    return w.ada


def activate_by_cli(w: World) -> int:
    cli(w.runner, "users", "deactivate", "ada")
    cli(w.runner, "users", "activate", "ada")
    return w.ada


def delete_on_web(w: World) -> int:
    sign_in(w)
    assert submit(w.client, "/account/delete", {"password": PASSWORD}).status_code == 302
    assert get_user(w.app, w.ada) is None
    return w.ada


def delete_by_cli(w: World) -> int:
    cli(w.runner, "users", "delete", "ada", "--yes")
    assert get_user(w.app, w.ada) is None
    return w.ada


def grant_role(w: World) -> int:
    cli(w.runner, "roles", "create", "editor")
    cli(w.runner, "users", "add-role", "ada", "editor")
    return w.ada


def remove_role(w: World) -> int:
    grant_role(w)
    cli(w.runner, "users", "remove-role", "ada", "editor")
    return w.ada


CLI = {"actor": "cli"}
CASES = {
    "sign-in": Case(Event.SIGN_IN, sign_in, {"remember": False}),
    "sign-in-remembered": Case(Event.SIGN_IN, sign_in_remembered, {"remember": True}),
    "failed-wrong-password": Case(Event.SIGN_IN_FAILED, wrong_password, {"reason": "credentials"}),
    "failed-unknown-user": Case(Event.SIGN_IN_FAILED, unknown_user, {"reason": "credentials"}),
    "failed-deactivated": Case(Event.SIGN_IN_FAILED, deactivated, {"reason": "inactive"}),
    "sign-out": Case(Event.SIGN_OUT, sign_out, {}),
    "revoke-one": Case(Event.SESSION_REVOKED, revoke_one, {"count": 1, "scope": "one"}),
    "revoke-others": Case(Event.SESSION_REVOKED, revoke_others, {"count": 2, "scope": "others"}),
    "revoke-cli": Case(
        Event.SESSION_REVOKED, revoke_by_cli, {**CLI, "count": 2, "scope": "all"}, web=False
    ),
    "password-changed": Case(Event.PASSWORD_CHANGED, change_password, {}),
    "password-reset": Case(Event.PASSWORD_RESET, reset_password, {}),
    "email-change-requested": Case(
        Event.EMAIL_CHANGE_REQUESTED, request_email_change, {"new": "n***@example.com"}
    ),
    "email-changed": Case(Event.EMAIL_CHANGED, change_email, {}),
    "email-verified": Case(Event.EMAIL_VERIFIED, verify_email, {}),
    "account-created-web": Case(Event.ACCOUNT_CREATED, register, {}),
    "account-created-cli": Case(Event.ACCOUNT_CREATED, create_by_cli, CLI, web=False),
    "account-deactivated-cli": Case(Event.ACCOUNT_DEACTIVATED, deactivate_by_cli, CLI, web=False),
    "account-activated-cli": Case(Event.ACCOUNT_ACTIVATED, activate_by_cli, CLI, web=False),
    "account-deleted-web": Case(Event.ACCOUNT_DELETED, delete_on_web, {}),
    "account-deleted-cli": Case(Event.ACCOUNT_DELETED, delete_by_cli, CLI, web=False),
    "role-granted-cli": Case(Event.ROLE_GRANTED, grant_role, {**CLI, "role": "editor"}, web=False),
    "role-removed-cli": Case(Event.ROLE_REMOVED, remove_role, {**CLI, "role": "editor"}, web=False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_action_writes_one_event_row(
    case: Case,
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    outbox: Outbox,
    clock: FakeClock,
) -> None:
    ada = make_user(app)
    before = len(audit_rows(app, case.event))
    clock.advance(days=3, minutes=17)  # a time no other step could have stamped
    world = World(app, as_device(client), runner, outbox, clock, ada)

    user_id = case.act(world)

    found = audit_rows(app, case.event)
    assert len(found) == before + 1, [r.event for r in audit_rows(app)]
    row = found[-1]
    assert row.user_id == user_id
    assert row.at == clock.now
    assert row.at.tzinfo is not None
    assert row.at.utcoffset() == timedelta(0)
    assert row.detail == case.detail
    if case.web:
        assert (row.ip, row.user_agent) == (IP, UA)
    else:
        assert (row.ip, row.user_agent) == ("", CLI_UA)


def test_every_event_name_has_a_label_and_a_signal() -> None:
    assert set(LABELS) == set(Event)
    assert set(signals.BY_EVENT) == set(Event)
    assert all(sig.name == f"portcullis.{event}" for event, sig in signals.BY_EVENT.items())


def test_the_deleted_account_keeps_its_trail(app: Flask, client: FlaskClient, user: int) -> None:
    """No foreign key: deleting the user leaves every event, with its user id."""
    login(client)
    login(app.test_client(), password=WRONG_PASSWORD)
    before = [r for r in audit_rows(app) if r.user_id == user]
    submit(client, "/account/delete", {"password": PASSWORD})
    after = [r for r in audit_rows(app) if r.user_id == user]
    assert after[: len(before)] == before
    assert [r.event for r in after[len(before) :]] == [Event.ACCOUNT_DELETED]


def test_a_new_account_never_inherits_a_deleted_accounts_trail(tmp_path: Path) -> None:
    host = create_host_app(f"sqlite:///{tmp_path / 'host.db'}")
    try:
        make_user(host, "ada", "ada@example.com")
        make_user(host, "bob", "bob@example.com")
        bob = as_device(host.test_client(), OTHER_IP, "BobBrowser/9.9")
        login(bob, "bob")
        assert submit(bob, "/account/delete", {"password": PASSWORD}).status_code == 302

        carol = host.test_client()
        data = {
            "username": "carol",
            "email": "carol@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        }
        assert submit(carol, "/register", data).status_code == 302
        page = carol.get("/account/activity").get_data(as_text=True)
        assert labels_on(page) == ["Signed in", "Account created"]
        assert "BobBrowser" not in page
    finally:
        with host.app_context():
            get_state(host).db.engine.dispose()


def test_unverified_sign_in_failure(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_EMAIL_VERIFICATION="required")
    ada = make_user(app)
    client = as_device(app.test_client())
    response = login(client)
    assert response.status_code == 422
    row = last(app, Event.SIGN_IN_FAILED)
    assert (row.user_id, row.detail, row.ip, row.user_agent) == (
        ada,
        {"reason": "unverified"},
        IP,
        UA,
    )
    assert audit_rows(app, Event.SIGN_IN) == []


def test_throttled_requests_are_recorded(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_LOGIN_LIMIT_PER_CLIENT="2/minute")
    make_user(app)
    client = as_device(app.test_client())
    assert login(client, password=WRONG_PASSWORD).status_code == 422
    assert login(client, password=WRONG_PASSWORD).status_code == 422
    response = login(client)
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    [row] = audit_rows(app, Event.THROTTLED)
    assert row.at == clock.now
    assert (row.ip, row.user_agent) == (IP, UA)
    assert row.detail == {"path": "/login", "retry_after": retry_after}
    # The refused attempt is neither a sign-in nor a counted failure.
    assert audit_rows(app, Event.SIGN_IN) == []
    assert len(audit_rows(app, Event.SIGN_IN_FAILED)) == 2


def test_every_api_throttle_is_recorded(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_REGISTER_LIMIT_PER_CLIENT="1/hour")
    client = as_device(app.test_client())
    for n, status in ((1, 201), (2, 429)):
        body = {"username": f"user{n}", "email": f"user{n}@example.com", "password": PASSWORD}
        assert client.post("/api/v1/register", json=body).status_code == status
    [row] = audit_rows(app, Event.THROTTLED)
    assert row.detail == {
        "path": "/api/v1/register",
        "retry_after": row.detail["retry_after"],
        "via": "api",
    }
    assert row.detail["retry_after"] > 0


def test_registration_throttle_is_recorded(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_REGISTER_LIMIT_PER_CLIENT="1/hour")
    for n, status in ((1, 302), (2, 429)):
        client = as_device(app.test_client())
        data = {
            "username": f"user{n}",
            "email": f"user{n}@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        }
        assert submit(client, "/register", data).status_code == status
    [row] = audit_rows(app, Event.THROTTLED)
    assert row.detail["path"] == "/register"
    assert row.ip == IP


# -- no secrets, ever -------------------------------------------------------------------


def test_no_password_or_token_is_ever_stored(
    app: Flask, client: FlaskClient, outbox: Outbox, tmp_path: Path
) -> None:
    """A journey through every secret a user types or is sent; none reaches the database."""
    first = "first passphrase of grace hopper"
    typo = "grace typed this secret wrongly"
    in_the_wrong_box = "my secret passphrase in the username box"
    secrets_seen: list[str] = [first, NEW_PASSWORD, RESET_PASSWORD, typo, in_the_wrong_box]
    as_device(client)

    data = {"username": "grace", "email": "grace@example.com"}
    response = submit(client, "/register", {**data, "password": first, "password_confirm": first})
    assert response.status_code == 302
    [verify] = outbox.wait_for("grace@example.com")
    verify_link = verify.link("/verify-email/")
    assert submit(client, verify_link, {}).status_code == 302
    change = {
        "current_password": first,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    assert submit(client, "/account/password", change).status_code == 302
    session_id = client_session_id(app, client)
    assert submit(client, "/logout", {}).status_code == 302

    assert login(client, "grace", typo).status_code == 422
    assert login(client, in_the_wrong_box, NEW_PASSWORD).status_code == 422
    submit(client, "/forgot-password", {"email": "grace@example.com"})
    reset = outbox.wait_for("grace@example.com", 3)[-1]
    reset_link = reset.link("/reset-password/")
    reset_data = {"password": RESET_PASSWORD, "password_confirm": RESET_PASSWORD}
    assert submit(client, reset_link, reset_data).status_code == 302
    assert login(client, "grace", RESET_PASSWORD).status_code == 302
    email_data = {"email": "grace.h@example.com", "password": RESET_PASSWORD}
    assert submit(client, "/account/email", email_data).status_code == 302
    [confirm] = outbox.wait_for("grace.h@example.com")
    confirm_link = confirm.link("/confirm-email/")
    assert submit(client, confirm_link, {}).status_code == 302

    tokens = [token_of(verify_link), token_of(reset_link), token_of(confirm_link), session_id]
    # Each token's signature alone is a secret too.
    tokens += [token.rsplit(".", 1)[-1] for token in tokens[:3]]
    assert {Event.PASSWORD_RESET, Event.EMAIL_CHANGED, Event.EMAIL_VERIFIED} <= {
        Event(r.event) for r in audit_rows(app)
    }

    table = raw_rows(app)
    assert len(table) >= 10
    for row in table:
        for value in row:
            text = str(value)
            for secret in secrets_seen + tokens:
                assert secret not in text, f"{secret!r} stored in audit row {row!r}"
    with closing(sqlite3.connect(tmp_path / "test.db")) as db:
        dump = "\n".join(db.iterdump())
    for secret in secrets_seen + tokens:
        assert secret not in dump, f"{secret!r} found in the database"


def client_session_id(app: Flask, client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    value = serializer.loads(cookie.value)[SESSION_KEY]
    assert isinstance(value, str)
    return value


def test_secret_looking_detail_keys_are_dropped(app: Flask) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        received.append(kwargs["detail"])

    with signals.security_event.connected_to(receiver, sender=app), app.app_context():
        get_state(app).audit.record(
            Event.PASSWORD_CHANGED,
            user_id=7,
            password="hunter2-plain",
            new_password="hunter3-plain",
            reset_token="tok-123",
            Client_Secret="s3cr3t",
            session_id="sid-456",
            recovery_code="rc-789",
            method="form",
            count=2,
        )
    [row] = audit_rows(app, Event.PASSWORD_CHANGED)
    assert row.detail == {"method": "form", "count": 2}
    assert received == [{"method": "form", "count": 2}]
    for secret in ("hunter2", "hunter3", "tok-123", "s3cr3t", "sid-456", "rc-789"):
        assert all(secret not in str(value) for value in raw_rows(app)[0])


@pytest.mark.parametrize("key", ["api_key", "otp", "credentials", "Cookie", "authorization"])
def test_other_secret_looking_keys_are_dropped(app: Flask, key: str) -> None:
    with app.app_context():
        get_state(app).audit.record(Event.SIGN_IN, user_id=1, **{key: "s3cr3t-value"}, kept=1)
    assert audit_rows(app, Event.SIGN_IN)[0].detail == {"kept": 1}


def test_a_passphrase_key_is_dropped(app: Flask) -> None:
    with app.app_context():
        get_state(app).audit.record(Event.SIGN_IN, user_id=1, passphrase="s3cr3t-value")
    assert all("s3cr3t-value" not in str(value) for value in raw_rows(app)[0])


def test_nested_secret_keys_are_dropped(app: Flask) -> None:
    """A copy of a submitted form loses its password too."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        received.append(kwargs["detail"])

    form = {"identity": "ada", "password": "hunter2-plain", "extra": {"reset_token": "tok-9"}}
    with signals.sign_in_failed.connected_to(receiver, sender=app), app.app_context():
        get_state(app).audit.record(Event.SIGN_IN_FAILED, user_id=1, form=form)
    expected = {"form": {"identity": "ada", "extra": {}}}
    assert audit_rows(app, Event.SIGN_IN_FAILED)[0].detail == expected
    assert received == [expected]
    assert all("hunter2" not in str(v) and "tok-9" not in str(v) for v in raw_rows(app)[0])


def test_a_long_detail_is_still_valid_json(app: Flask) -> None:
    """The detail is small: one too long to keep is cut down to something still readable."""
    with app.app_context():
        get_state(app).audit.record(Event.ROLE_GRANTED, user_id=1, note="x" * (DETAIL_MAX + 100))
    [stored] = [row[-1] for row in raw_rows(app)]
    assert len(stored) <= DETAIL_MAX
    assert isinstance(json.loads(stored), dict)
    assert audit_rows(app, Event.ROLE_GRANTED)[0].user_id == 1


def test_client_text_is_cleaned_and_bounded(app: Flask, client: FlaskClient, user: int) -> None:
    as_device(client, user_agent="Evil\u202e/1.0\x00" + "A" * 1000)
    login(client)
    row = last(app, Event.SIGN_IN)
    assert row.user_agent.startswith("Evil/1.0AAA")
    assert len(row.user_agent) == 512


# -- signals ---------------------------------------------------------------------------


def test_sign_in_failed_signal_via_the_app(app: Flask, client: FlaskClient, user: int) -> None:
    got: list[tuple[Flask, dict[str, Any]]] = []

    @signals.sign_in_failed.connect_via(app)
    def on_failure(sender: Flask, **kwargs: Any) -> None:
        got.append((sender, kwargs))

    try:
        as_device(client)
        login(client, password=WRONG_PASSWORD)
        login(client, "nobody-at-all", PASSWORD)
        login(client)  # a success: not this signal
    finally:
        signals.sign_in_failed.disconnect(on_failure, sender=app)
    assert [sender for sender, _ in got] == [app, app]
    assert [kwargs for _, kwargs in got] == [
        {"user_id": user, "ip": IP, "user_agent": UA, "detail": {"reason": "credentials"}},
        {"user_id": None, "ip": IP, "user_agent": UA, "detail": {"reason": "credentials"}},
    ]


def test_security_event_signal_sees_every_event(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, user: int
) -> None:
    got: list[tuple[str, int | None, dict[str, Any]]] = []

    @signals.security_event.connect_via(app)
    def on_event(sender: Flask, **kwargs: Any) -> None:
        assert sender is app
        assert set(kwargs) == {"event", "user_id", "ip", "user_agent", "detail"}
        got.append((kwargs["event"], kwargs["user_id"], kwargs["detail"]))

    try:
        login(as_device(client))
        submit(client, "/logout", {})
        cli(runner, "users", "deactivate", "ada")
    finally:
        signals.security_event.disconnect(on_event, sender=app)
    assert got == [
        (Event.SIGN_IN, user, {"remember": False}),
        (Event.SIGN_OUT, user, {}),
        (Event.ACCOUNT_DEACTIVATED, user, {"actor": "cli"}),
    ]


def test_a_receiver_of_another_app_hears_nothing(
    app: Flask, make_demo_app: AppFactory, clock: FakeClock, client: FlaskClient, user: int
) -> None:
    other = make_demo_app(clock=clock)
    got: list[object] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        got.append(sender)

    with signals.sign_in.connected_to(receiver, sender=other):
        login(client)
    assert got == []
    assert len(audit_rows(app, Event.SIGN_IN)) == 1


# -- the user's activity page and export ------------------------------------------------


def labels_on(page: str) -> list[str]:
    labels = "|".join(re.escape(label) for label in LABELS.values())
    return re.findall(rf"<td>({labels})</td>", page)


def test_activity_shows_own_events_newest_first(
    app: Flask, client: FlaskClient, clock: FakeClock, user: int
) -> None:
    make_user(app, "bob", "bob@example.com")
    bob = as_device(app.test_client(), "192.0.2.99", "BobBrowser/9.9")
    login(bob, "bob", WRONG_PASSWORD)
    login(bob, "bob")

    as_device(client)
    login(client, password=WRONG_PASSWORD)
    clock.advance(minutes=20)
    login(client)
    clock.advance(minutes=20)  # within the idle timeout
    change = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    assert submit(client, "/account/password", change).status_code == 302

    response = client.get("/account/activity")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert labels_on(page) == ["Password changed", "Signed in", "Failed sign-in"]
    times = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page)
    assert times == [
        ("2026-01-01T12:40:00+00:00", "2026-01-01 12:40"),
        ("2026-01-01T12:20:00+00:00", "2026-01-01 12:20"),
        ("2026-01-01T12:00:00+00:00", "2026-01-01 12:00"),
    ]
    assert IP in page
    assert UA in page
    assert "BobBrowser" not in page
    assert "192.0.2.99" not in page


def test_activity_of_a_new_user_is_only_their_sign_up(app: Flask, client: FlaskClient) -> None:
    data = {
        "username": "grace",
        "email": "grace@example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    submit(client, "/register", data)
    page = client.get("/account/activity").get_data(as_text=True)
    assert labels_on(page) == ["Signed in", "Account created"]


@pytest.mark.parametrize("path", ["/account/activity", "/account/export"])
def test_activity_and_export_need_sign_in(app: Flask, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_export_includes_activity(
    app: Flask, client: FlaskClient, clock: FakeClock, user: int
) -> None:
    make_user(app, "bob", "bob@example.com")
    login(as_device(app.test_client(), "192.0.2.99", "BobBrowser/9.9"), "bob")
    as_device(client)
    login(client, password=WRONG_PASSWORD)
    clock.advance(minutes=5)
    login(client)

    response = client.get("/account/export")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    data = json.loads(response.get_data(as_text=True))
    assert data["activity"] == [
        {
            "at": "2026-01-01T12:05:00+00:00",
            "event": "sign-in",
            "label": "Signed in",
            "ip": IP,
            "user_agent": UA,
        },
        {
            "at": "2026-01-01T12:00:00+00:00",
            "event": "sign-in-failed",
            "label": "Failed sign-in",
            "ip": IP,
            "user_agent": UA,
        },
    ]
    assert "BobBrowser" not in response.get_data(as_text=True)


# -- retention ------------------------------------------------------------------------


def record_at(app: Flask, clock: FakeClock, when: datetime, event: Event) -> None:
    saved = clock.now
    clock.now = when
    try:
        with app.app_context():
            get_state(app).audit.record(event, user_id=1)
    finally:
        clock.now = saved


def test_prune_deletes_only_events_past_retention(
    app: Flask, runner: FlaskCliRunner, clock: FakeClock
) -> None:
    now = clock.now
    record_at(app, clock, now - timedelta(days=400), Event.SIGN_IN)
    record_at(app, clock, now - timedelta(days=365, seconds=1), Event.SIGN_OUT)
    record_at(app, clock, now - timedelta(days=365), Event.PASSWORD_CHANGED)  # exactly at the edge
    record_at(app, clock, now - timedelta(days=20), Event.EMAIL_CHANGED)
    record_at(app, clock, now, Event.ROLE_GRANTED)

    result = cli(runner, "portcullis", "prune-audit")
    assert result.output.strip() == "deleted 2 audit event(s) older than 365 days"
    assert [r.event for r in audit_rows(app)] == [
        "password-changed",
        "email-changed",
        "role-granted",
    ]

    result = cli(runner, "portcullis", "prune-audit", "--days", "10")
    assert result.output.strip() == "deleted 2 audit event(s) older than 10 days"
    assert [r.event for r in audit_rows(app)] == ["role-granted"]

    result = cli(runner, "portcullis", "prune-audit")
    assert result.output.strip() == "deleted 0 audit event(s) older than 365 days"


def test_prune_follows_the_clock(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, clock: FakeClock, user: int
) -> None:
    login(client)
    submit(client, "/logout", {})
    clock.advance(days=300)
    login(client)
    assert cli(runner, "portcullis", "prune-audit").output.startswith("deleted 0 ")
    clock.advance(days=66)
    assert cli(runner, "portcullis", "prune-audit").output.startswith("deleted 2 ")
    assert [r.event for r in audit_rows(app)] == ["sign-in"]


def test_prune_uses_the_configured_retention(make_demo_app: AppFactory, clock: FakeClock) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_AUDIT_RETENTION_DAYS=30)
    record_at(app, clock, clock.now - timedelta(days=31), Event.SIGN_IN)
    record_at(app, clock, clock.now - timedelta(days=29), Event.SIGN_IN)
    result = cli(app.test_cli_runner(), "portcullis", "prune-audit")
    assert result.output.strip() == "deleted 1 audit event(s) older than 30 days"
    assert len(audit_rows(app)) == 1


def test_prune_refuses_zero_days(app: Flask, runner: FlaskCliRunner, clock: FakeClock) -> None:
    record_at(app, clock, clock.now - timedelta(days=1), Event.SIGN_IN)
    result = runner.invoke(args=["portcullis", "prune-audit", "--days", "0"])
    assert result.exit_code == 2
    assert len(audit_rows(app)) == 1


# -- sign-in notices ---------------------------------------------------------------------


def notices(outbox: Outbox, address: str = "ada@example.com") -> list[str]:
    """The text of every new-sign-in notice ``address`` received."""
    return [m.text for m in outbox.to(address) if m.subject.startswith(NOTICE)]


def sign_in_and_out(client: FlaskClient, identity: str = "ada", password: str = PASSWORD) -> None:
    assert login(client, identity, password).status_code == 302
    assert submit(client, "/logout", {}).status_code == 302


def test_first_sign_in_sends_no_notice(app: Flask, outbox: Outbox, user: int) -> None:
    sign_in_and_out(as_device(app.test_client()))
    assert notices(outbox) == []


def test_sign_in_after_web_registration_sends_no_notice(
    app: Flask, client: FlaskClient, outbox: Outbox
) -> None:
    as_device(client)
    data = {
        "username": "grace",
        "email": "grace@example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    assert submit(client, "/register", data).status_code == 302
    submit(client, "/logout", {})
    sign_in_and_out(client, "grace")
    assert notices(outbox, "grace@example.com") == []


def test_first_sign_in_after_verified_registration_sends_no_notice(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_EMAIL_VERIFICATION="required")
    client = as_device(app.test_client())
    data = {
        "username": "grace",
        "email": "grace@example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    assert submit(client, "/register", data).status_code == 200
    [mail] = outbox.wait_for("grace@example.com")
    submit(client, mail.link("/verify-email/"), {})
    sign_in_and_out(as_device(app.test_client(), OTHER_IP, "Elsewhere/1.0"), "grace")
    assert notices(outbox, "grace@example.com") == []


@pytest.mark.parametrize(
    ("ip", "user_agent"),
    [(OTHER_IP, UA), (IP, "Mozilla/5.0 Unfamiliar/7.0")],
    ids=["new-ip", "new-browser"],
)
def test_sign_in_from_a_new_device_mails_a_notice(
    app: Flask, outbox: Outbox, clock: FakeClock, user: int, ip: str, user_agent: str
) -> None:
    sign_in_and_out(as_device(app.test_client()))
    clock.advance(hours=2, minutes=5)
    sign_in_and_out(as_device(app.test_client(), ip, user_agent))

    mails = [m for m in outbox.to("ada@example.com") if m.subject.startswith(NOTICE)]
    assert len(mails) == 1
    [mail] = mails
    assert mail.subject == f"{NOTICE} · Portcullis demo"
    for part in (mail.text, mail.html):
        assert "Hello ada" in part
        assert "a browser or network it has not used before" in part
        assert "2026-01-01 14:05 UTC" in part
        assert f"From IP address: {ip}" in part
        assert f"Browser: {user_agent}" in part
        assert "failed attempts" not in part
    assert "/forgot-password" in mail.text


def test_known_devices_get_no_notice(app: Flask, outbox: Outbox, user: int) -> None:
    sign_in_and_out(as_device(app.test_client()))
    sign_in_and_out(as_device(app.test_client(), OTHER_IP, "Phone/1.0"))
    assert len(notices(outbox)) == 1
    sign_in_and_out(as_device(app.test_client()))
    sign_in_and_out(as_device(app.test_client(), OTHER_IP, "Phone/1.0"))
    sign_in_and_out(as_device(app.test_client()))
    assert len(notices(outbox)) == 1


def test_a_known_ip_with_a_known_browser_of_another_ip_is_new(
    app: Flask, outbox: Outbox, user: int
) -> None:
    """The pair counts: a browser seen on one network and a network seen with another
    browser make a new device together."""
    sign_in_and_out(as_device(app.test_client(), IP, "Laptop/1.0"))
    sign_in_and_out(as_device(app.test_client(), OTHER_IP, "Phone/1.0"))
    sign_in_and_out(as_device(app.test_client(), IP, "Phone/1.0"))
    assert len(notices(outbox)) == 2


def test_a_sign_in_after_failures_mails_a_notice(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_LOGIN_FREE_FAILURES=5)
    make_user(app)
    client = as_device(app.test_client())
    sign_in_and_out(client)  # a known device: only the failures make the notice
    for _ in range(5):
        assert login(client, password=WRONG_PASSWORD).status_code == 422
    sign_in_and_out(client)
    [text] = notices(outbox)
    assert "signed in to after 5 failed attempts" in text
    assert f"From IP address: {IP}" in text
    # The run is over: the next sign-in is ordinary.
    sign_in_and_out(client)
    assert len(notices(outbox)) == 1


def test_fewer_failures_than_the_threshold_send_nothing(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_LOGIN_FREE_FAILURES=5)
    make_user(app)
    client = as_device(app.test_client())
    sign_in_and_out(client)
    for _ in range(4):
        login(client, password=WRONG_PASSWORD)
    sign_in_and_out(client)
    assert notices(outbox) == []


def test_new_device_notice_can_be_turned_off(
    make_demo_app: AppFactory, clock: FakeClock, outbox: Outbox
) -> None:
    app = make_demo_app(
        clock=clock, PORTCULLIS_NEW_DEVICE_NOTICE=False, PORTCULLIS_LOGIN_FREE_FAILURES=5
    )
    make_user(app)
    sign_in_and_out(as_device(app.test_client()))
    new_device = as_device(app.test_client(), OTHER_IP, "Unfamiliar/1.0")
    sign_in_and_out(new_device)
    assert notices(outbox) == []
    # The notice after a run of failures is a separate rule and stays on.
    for _ in range(5):
        login(new_device, password=WRONG_PASSWORD)
    sign_in_and_out(new_device)
    [text] = notices(outbox)
    assert "after 5 failed attempts" in text
