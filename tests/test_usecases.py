"""Each use case through both adapters: the pages and the JSON API do the same thing.

The use cases (``flask_portcullis.usecases``) write the audit row (and so its signal) and
send the mail; the pages and the API only translate. So for every use case both adapters
offer, one test drives it through each adapter, a browser posting forms with their CSRF
tokens or an API client sending JSON with a bearer token, and checks that what happened is
exactly one expected value for both: the audit rows written, the signals sent and the mails
the real SMTP server received. A row or mail missing for one adapter fails that adapter's
test.

What differs by design is written down where it differs:

- every API row carries ``via: "api"`` and no page row has ``via``; the rows are compared
  without it (``Watch.effects`` checks it);
- the page records ``remember`` (the "remember me" box) on every sign-in; the API has no
  such box (``PAGE_ONLY_DETAIL``);
- a sign-up with verification optional signs the browser in (a sign-in row), while the API
  answers the new account without tokens;
- ending every session: the page ends the *others* and keeps this browser and its trusted
  device; the API's logout-everywhere ends *all*, the caller's own among them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.identity import mask_email
from flask_portcullis.sessions import digest
from flask_portcullis.signals import security_event
from flask_portcullis.web.keys import PENDING_VERIFICATION, SESSION_KEY

from .conftest import (
    LINK,
    PASSWORD,
    FakeClock,
    Outbox,
    csrf_token,
    make_app,
    make_user,
    path_of,
    submit,
    text,
)
from .totp import STEP, code_for

API = "/api/v1"
NEW_PASSWORD = "a brand new passphrase for ada"
OLD_PHONE = "Mozilla/5.0 (Linux; Android 9) an old phone"
# What the page alone records on a sign-in: its "remember me" box (the API has none).
PAGE_ONLY_DETAIL: Mapping[Event, Mapping[str, Any]] = {Event.SIGN_IN: {"remember": False}}

Row = tuple[Event, str | None, dict[str, Any]]
"""An audit row: its event, the username of its account (None for none), its detail
without ``via``."""
Sent = tuple[str, str, str | None]
"""A mail: its recipient, its subject without the site's name, and where its one link with a
token goes (``/verify-email/``, ``/reset-password/``; None when it has none)."""


# -- what happened ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Effects:
    rows: list[Row]
    mails: list[Sent]


@dataclass(frozen=True)
class Expected:
    """One case's answer (in adapter-neutral words) and effects, the same for both adapters
    but ``only``: rows one adapter writes by design, after the shared ones."""

    outcome: str
    rows: tuple[Row, ...] = ()
    mails: tuple[Sent, ...] = ()
    only: Mapping[str, tuple[Row, ...]] = field(default_factory=dict)

    def effects(self, adapter: str) -> Effects:
        return Effects([*self.rows, *self.only.get(adapter, ())], sorted(self.mails))


def sent(mail_to: str, subject: str, link: str | None = None) -> Sent:
    return (mail_to, subject, link)


def token_link(body: str) -> str | None:
    """Where the mail's one link with a token goes: its first path segment, between slashes.
    (Every mail also links the plain /forgot-password page: "not you?")"""
    paths = [urlsplit(str(url)).path for url in LINK.findall(body)]
    with_token = [p for p in paths if len(p.strip("/").split("/")) > 1]
    assert len(with_token) <= 1, body
    return "/" + with_token[0].strip("/").split("/")[0] + "/" if with_token else None


class Watch:
    """The audit rows, signals and mails of one action: from ``mark()`` to ``effects()``."""

    def __init__(self, app: Flask, outbox: Outbox, adapter: str) -> None:
        self.app, self.outbox, self.adapter = app, outbox, adapter
        self.signals: list[tuple[str, int | None, dict[str, Any]]] = []
        self.first_row = 0
        self.names: dict[int, str] = {}

    def receive(
        self, sender: Flask, event: Event, user_id: int | None, detail: dict[str, Any], **_: Any
    ) -> None:
        assert sender is self.app
        self.signals.append((str(event), user_id, dict(detail)))

    def mark(self) -> None:
        """Forget what the setting up did; note every account's name (one may be deleted)."""
        with self.app.app_context():
            state = get_state(self.app)
            AuditEvent, User = state.models.AuditEvent, state.models.User
            last = state.db.session.scalar(select(func.max(AuditEvent.id)))
            accounts = state.db.session.execute(select(User.id, User.username))
            self.names = {row.id: row.username for row in accounts}
        self.first_row = (last or 0) + 1
        self.signals.clear()
        self.outbox.clear()

    def effects(self) -> Effects:
        """What happened since ``mark()``. Once per test: it waits for the background mail
        (the reset link) by shutting the mail worker down, as test_enumeration does."""
        with self.app.app_context():
            state = get_state(self.app)
            state.notifier.shutdown()
            AuditEvent = state.models.AuditEvent
            query = select(AuditEvent).where(AuditEvent.id >= self.first_row)
            raw = [
                (r.event, r.user_id, json.loads(r.detail))
                for r in state.db.session.scalars(query.order_by(AuditEvent.id))
            ]
            names = {uid: self.username(uid) for _, uid, _ in raw}
        # Every row sent its signal, with the app as sender: same event, account and detail.
        assert self.signals == raw
        rows = [
            (Event(e), names[uid], self.without_adapter_detail(Event(e), d)) for e, uid, d in raw
        ]
        mails = sorted(
            sent(to, m.subject.split(" · ")[0], token_link(m.text))
            for m in self.outbox.mails
            for to in m.to
        )
        return Effects(rows, mails)

    def username(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        user = get_state(self.app).accounts.get(user_id)
        return user.username if user is not None else self.names[user_id]  # deleted since

    def without_adapter_detail(self, event: Event, detail: dict[str, Any]) -> dict[str, Any]:
        """The detail without what one adapter adds: the API's ``via``, the page's
        ``remember`` (each checked to be there for its adapter, and only there)."""
        via = detail.pop("via", None)
        assert via == ("api" if self.adapter == "api" else None), (event, via)
        for key, value in PAGE_ONLY_DETAIL.get(event, {}).items():
            if self.adapter == "page":
                assert detail.pop(key) == value, (event, detail)
            else:
                assert key not in detail, (event, detail)
        return detail


# -- the two adapters ------------------------------------------------------------------------


class Adapter(Protocol):
    """One way in, doing each use case as its users would; answers in adapter-neutral words."""

    app: Flask

    def other(self, user_agent: str | None = None) -> Adapter: ...
    def sign_up(self, username: str, email: str) -> str: ...
    def verify_email(self, token: str) -> str: ...
    def resend_mine(self) -> str: ...
    def resend_to(self, address: str) -> str: ...
    def sign_in(self, identity: str = "ada", password: str = PASSWORD) -> str: ...
    def second_step(self, code: str) -> str: ...
    def change_password(self, current: str, new: str) -> str: ...
    def forgot_password(self, address: str) -> str: ...
    def reset_password(self, token: str, new: str) -> str: ...
    def session_id(self) -> str: ...
    def end_session(self, session_id: str) -> str: ...
    def end_all_sessions(self) -> str: ...
    def change_email(self, password: str, new_email: str) -> str: ...
    def confirm_email(self, token: str) -> str: ...
    def delete_account(self, password: str) -> str: ...


def status(response: TestResponse, answers: Mapping[int, str]) -> str:
    """The adapter-neutral word for a response's status (any other fails)."""
    assert response.status_code in answers, (response.status_code, text(response)[:2000])
    return answers[response.status_code]


class Page:
    """A browser: pages, forms with their CSRF tokens, a session cookie."""

    def __init__(self, app: Flask, user_agent: str | None = None) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        if user_agent:
            self.client.environ_base["HTTP_USER_AGENT"] = user_agent

    def other(self, user_agent: str | None = None) -> Page:
        return Page(self.app, user_agent)

    def sign_up(self, username: str, email: str) -> str:
        form = {"username": username, "email": email, "password": PASSWORD}
        response = submit(self.client, "/register", {**form, "password_confirm": PASSWORD})
        if response.status_code == 200:
            assert "Check your inbox" in text(response)
            return "check-inbox"
        assert path_of(response) == "/", text(response)
        return "created"

    def verify_email(self, token: str) -> str:
        return status(submit(self.client, f"/verify-email/{token}", {}), {302: "verified"})

    def resend_mine(self) -> str:
        token = csrf_token(self.client, "/account")
        response = self.client.post("/verify-email", data={"csrf_token": token})
        return status(response, {302: "accepted"})

    def resend_to(self, address: str) -> str:
        # The page sends to the address of the sign-in it just refused (kept in the session).
        with self.client.session_transaction() as session:
            assert session.get(PENDING_VERIFICATION) == address
        token = csrf_token(self.client, "/login")
        response = self.client.post("/verify-email", data={"csrf_token": token})
        return status(response, {302: "accepted"})

    def sign_in(self, identity: str = "ada", password: str = PASSWORD) -> str:
        response = submit(self.client, "/login", {"identity": identity, "password": password})
        if response.status_code == 302:
            return "second-factor" if path_of(response) == "/login/two-factor" else "signed-in"
        return status(response, {422: "refused"})

    def second_step(self, code: str) -> str:
        response = submit(self.client, "/login/two-factor", {"code": code})
        return status(response, {302: "signed-in", 422: "refused"})

    def change_password(self, current: str, new: str) -> str:
        form = {"current_password": current, "new_password": new, "new_password_confirm": new}
        response = submit(self.client, "/account/password", form)
        return status(response, {302: "changed", 422: "refused"})

    def forgot_password(self, address: str) -> str:
        response = submit(self.client, "/forgot-password", {"email": address})
        assert "Check your inbox" in text(response)
        return status(response, {200: "accepted"})

    def reset_password(self, token: str, new: str) -> str:
        form = {"password": new, "password_confirm": new}
        return status(submit(self.client, f"/reset-password/{token}", form), {302: "reset"})

    def session_id(self) -> str:
        """The stored id of this browser's session (the cookie holds the raw one)."""
        with self.client.session_transaction() as session:
            raw = session[SESSION_KEY]
        assert isinstance(raw, str)
        return digest(raw)

    def end_session(self, session_id: str) -> str:
        response = submit(self.client, "/account/sessions", {"session": session_id})
        assert path_of(response) == "/account/sessions"
        page = text(self.client.get("/account/sessions"))  # with its flash
        return "ended" if "That device is signed out." in page else "not-ended"

    def end_all_sessions(self) -> str:
        response = submit(self.client, "/account/sessions", {"session": "others"})
        return status(response, {302: "ended"})

    def change_email(self, password: str, new_email: str) -> str:
        form = {"email": new_email, "password": password}
        return status(
            submit(self.client, "/account/email", form), {302: "requested", 422: "refused"}
        )

    def confirm_email(self, token: str) -> str:
        response = submit(self.client, f"/confirm-email/{token}", {})
        # A taken address sends the browser back to start the change again.
        return "changed" if path_of(response) == "/account" else "refused"

    def delete_account(self, password: str) -> str:
        response = submit(self.client, "/account/delete", {"password": password})
        return status(response, {302: "deleted", 422: "refused"})


class Api:
    """An API client: JSON bodies, and the access token of its last sign-in as bearer."""

    def __init__(self, app: Flask, user_agent: str | None = None) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        if user_agent:
            self.client.environ_base["HTTP_USER_AGENT"] = user_agent
        self.access_token = ""
        self.challenge = ""

    def other(self, user_agent: str | None = None) -> Api:
        return Api(self.app, user_agent)

    def post(self, path: str, body: Any = None, *, method: str = "POST") -> TestResponse:
        headers = {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}
        return self.client.open(API + path, method=method, json=body, headers=headers)

    def signed_in(self, response: TestResponse) -> str:
        self.access_token = response.get_json()["access_token"]
        return "signed-in"

    def sign_up(self, username: str, email: str) -> str:
        body = {"username": username, "email": email, "password": PASSWORD}
        return status(self.post("/register", body), {201: "created", 202: "check-inbox"})

    def verify_email(self, token: str) -> str:
        return status(self.post("/verify-email", {"token": token}), {200: "verified"})

    def resend_mine(self) -> str:
        return status(self.post("/verify-email/request"), {202: "accepted"})

    def resend_to(self, address: str) -> str:
        return status(self.post("/verify-email/resend", {"email": address}), {202: "accepted"})

    def sign_in(self, identity: str = "ada", password: str = PASSWORD) -> str:
        response = self.post("/login", {"identity": identity, "password": password})
        if response.status_code == 200:
            return self.signed_in(response)
        if response.status_code == 202:
            self.challenge = response.get_json()["challenge"]
            return "second-factor"
        return status(response, {401: "refused", 403: "refused"})

    def second_step(self, code: str) -> str:
        response = self.post("/login/two-factor", {"challenge": self.challenge, "code": code})
        if response.status_code == 200:
            return self.signed_in(response)
        return status(response, {401: "refused"})

    def change_password(self, current: str, new: str) -> str:
        body = {"current_password": current, "new_password": new}
        return status(self.post("/password", body), {204: "changed", 422: "refused"})

    def forgot_password(self, address: str) -> str:
        return status(self.post("/forgot-password", {"email": address}), {202: "accepted"})

    def reset_password(self, token: str, new: str) -> str:
        body = {"token": token, "password": new}
        return status(self.post("/reset-password", body), {204: "reset"})

    def session_id(self) -> str:
        sessions = self.post("/sessions", method="GET").get_json()["sessions"]
        [current] = [s["id"] for s in sessions if s["current"]]
        assert isinstance(current, str)
        return current

    def end_session(self, session_id: str) -> str:
        return status(self.post(f"/sessions/{session_id}", method="DELETE"), {204: "ended"})

    def end_all_sessions(self) -> str:
        return status(self.post("/logout-everywhere"), {204: "ended"})

    def change_email(self, password: str, new_email: str) -> str:
        body = {"password": password, "email": new_email}
        return status(self.post("/email", body), {202: "requested", 409: "refused", 422: "refused"})

    def confirm_email(self, token: str) -> str:
        response = self.post("/email/confirm", {"token": token})
        return status(response, {200: "changed", 409: "refused"})

    def delete_account(self, password: str) -> str:
        response = self.post("/me", {"password": password}, method="DELETE")
        return status(response, {204: "deleted", 422: "refused"})


ADAPTERS: dict[str, Callable[[Flask], Adapter]] = {"page": Page, "api": Api}


# -- fixtures and setting up -----------------------------------------------------------------


class Build(Protocol):
    def __call__(self, **config: Any) -> tuple[Adapter, Watch]: ...


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def build(
    tmp_path: Path,
    clock: FakeClock,
    adapter: str,
    outbox: Outbox,
    smtp_server: tuple[Outbox, int],
) -> Iterator[Build]:
    """The demo app (with ``config``), mailing the test SMTP server, with ada (unverified)
    in it; one client of the adapter, and a Watch on the app's signals."""
    apps: list[Flask] = []
    watches: list[Watch] = []

    def factory(**config: Any) -> tuple[Adapter, Watch]:
        app = make_app(tmp_path, clock, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server[1], **config)
        apps.append(app)
        make_user(app)
        watch = Watch(app, outbox, adapter)
        security_event.connect(watch.receive, sender=app)
        watches.append(watch)
        return ADAPTERS[adapter](app), watch

    yield factory
    for app, watch in zip(apps, watches, strict=True):
        security_event.disconnect(watch.receive, sender=app)
        with app.app_context():
            state = get_state(app)
            state.notifier.shutdown()
            state.db.engine.dispose()


def ada_id(app: Flask) -> int:
    with app.app_context():
        user = get_state(app).accounts.get_by_email("ada@example.com")
        assert user is not None
        return user.id


def link_token(app: Flask, kind: str) -> str:
    """A link token for ada, as her mail would carry it: "verify", "reset", or
    "change:<new address>"."""
    with app.test_request_context():
        state = get_state(app)
        user = state.accounts.get(ada_id(app))
        assert user is not None
        if kind == "verify":
            return state.links.verification_token(user)
        if kind.startswith("change:"):
            return state.links.email_change_token(user, kind.removeprefix("change:"))[1]
        return state.links.reset_token(user)


def enable_totp(app: Flask, clock: FakeClock) -> str:
    """Turn on TOTP for ada (as tests/test_two_factor.py's enrolment does, through the
    service) and move past the enabling code; return the secret."""
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(ada_id(app))
        assert user is not None
        secret = state.two_factor.begin(user).secret
        state.two_factor.enable(user, secret, code_for(secret, clock))
    clock.advance(seconds=4 * STEP)
    return secret


def wrong_code(secret: str, clock: FakeClock) -> str:
    near = {code_for(secret, clock, steps) for steps in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


def live_sessions(app: Flask) -> set[str]:
    with app.app_context():
        return {record.id for record in get_state(app).sessions.list_for(ada_id(app))}


# -- sign up, confirm the address, send the link again ---------------------------------------

VERIFY = "Confirm your email address"
SIGN_UP: dict[str, tuple[str, str, Expected]] = {
    # case: (verification, address, expected)
    "optional": (
        "optional",
        "grace@example.com",
        Expected(
            "created",
            rows=((Event.ACCOUNT_CREATED, "grace", {}),),
            mails=(sent("grace@example.com", VERIFY, "/verify-email/"),),
            # The page signs the new account in; the API answers it without tokens.
            only={"page": ((Event.SIGN_IN, "grace", {}),)},
        ),
    ),
    "required": (
        "required",
        "grace@example.com",
        Expected(
            "check-inbox",
            rows=((Event.ACCOUNT_CREATED, "grace", {}),),
            mails=(sent("grace@example.com", VERIFY, "/verify-email/"),),
        ),
    ),
    # The same answer as a new address; no account, and the owner is told instead.
    "required-taken": (
        "required",
        "ada@example.com",
        Expected(
            "check-inbox",
            mails=(sent("ada@example.com", "Someone tried to sign up with your address"),),
        ),
    ),
}


@pytest.mark.parametrize("case", SIGN_UP)
def test_sign_up(build: Build, adapter: str, case: str) -> None:
    verification, address, expected = SIGN_UP[case]
    actor, watch = build(PORTCULLIS_EMAIL_VERIFICATION=verification)
    watch.mark()
    assert actor.sign_up("grace", address) == expected.outcome
    assert watch.effects() == expected.effects(adapter)


def test_confirm_the_address(build: Build) -> None:
    actor, watch = build()
    token = link_token(actor.app, "verify")
    watch.mark()
    assert actor.verify_email(token) == "verified"
    assert watch.effects() == Effects([(Event.EMAIL_VERIFIED, "ada", {})], [])
    with actor.app.app_context():
        user = get_state(actor.app).accounts.get(ada_id(actor.app))
        assert user is not None
        assert user.email_verified


def test_send_the_link_again_when_signed_in(build: Build) -> None:
    actor, watch = build()
    assert actor.sign_in() == "signed-in"
    watch.mark()
    assert actor.resend_mine() == "accepted"
    assert watch.effects() == Effects([], [sent("ada@example.com", VERIFY, "/verify-email/")])


def test_send_the_link_again_to_an_address(build: Build) -> None:
    """Not signed in: after a sign-in refused for want of a confirmed address (the page sends
    to the address that sign-in kept; the API client names it)."""
    actor, watch = build(PORTCULLIS_EMAIL_VERIFICATION="required")
    assert actor.sign_in() == "refused"
    watch.mark()
    assert actor.resend_to("ada@example.com") == "accepted"
    assert watch.effects() == Effects([], [sent("ada@example.com", VERIFY, "/verify-email/")])


# -- sign in ---------------------------------------------------------------------------------

NEW_SIGN_IN = "New sign-in to your account"
SIGN_IN: dict[str, tuple[str, str, bool, Expected]] = {
    # case: (identity, password, signed in before from an old phone, expected)
    "right": ("ada", PASSWORD, False, Expected("signed-in", rows=((Event.SIGN_IN, "ada", {}),))),
    "new-device": (
        "ada",
        PASSWORD,
        True,
        Expected(
            "signed-in",
            rows=((Event.SIGN_IN, "ada", {}),),
            mails=(sent("ada@example.com", NEW_SIGN_IN),),
        ),
    ),
    "wrong": (
        "ada",
        "not the password at all",
        False,
        Expected("refused", rows=((Event.SIGN_IN_FAILED, "ada", {"reason": "credentials"}),)),
    ),
    # Nobody by that name: the same answer and reason, with no account on the row.
    "nobody": (
        "nobody",
        PASSWORD,
        False,
        Expected("refused", rows=((Event.SIGN_IN_FAILED, None, {"reason": "credentials"}),)),
    ),
}


@pytest.mark.parametrize("case", SIGN_IN)
def test_sign_in_with_password(build: Build, adapter: str, case: str) -> None:
    identity, password, known_before, expected = SIGN_IN[case]
    actor, watch = build()
    if known_before:
        assert actor.other(OLD_PHONE).sign_in() == "signed-in"
    watch.mark()
    assert actor.sign_in(identity, password) == expected.outcome
    assert watch.effects() == expected.effects(adapter)


SECOND_FACTOR: dict[str, tuple[bool, Expected]] = {
    # case: (the right code, expected)
    "right": (True, Expected("signed-in", rows=((Event.SIGN_IN, "ada", {"factor": "totp"}),))),
    "wrong": (
        False,
        Expected("refused", rows=((Event.SIGN_IN_FAILED, "ada", {"reason": "second-factor"}),)),
    ),
}


@pytest.mark.parametrize("case", SECOND_FACTOR)
def test_second_factor(build: Build, adapter: str, clock: FakeClock, case: str) -> None:
    right, expected = SECOND_FACTOR[case]
    actor, watch = build()
    secret = enable_totp(actor.app, clock)
    assert actor.sign_in() == "second-factor"
    watch.mark()
    code = code_for(secret, clock) if right else wrong_code(secret, clock)
    assert actor.second_step(code) == expected.outcome
    assert watch.effects() == expected.effects(adapter)


# -- passwords -------------------------------------------------------------------------------

CHANGE_PASSWORD: dict[str, tuple[str, Expected]] = {
    # case: (the current password given, expected)
    "right": (
        PASSWORD,
        Expected(
            "changed",
            rows=((Event.PASSWORD_CHANGED, "ada", {}),),
            mails=(sent("ada@example.com", "Your password was changed"),),
        ),
    ),
    "wrong": ("not the password at all", Expected("refused")),  # nothing recorded or mailed
}


@pytest.mark.parametrize("case", CHANGE_PASSWORD)
def test_change_password(build: Build, adapter: str, case: str) -> None:
    current, expected = CHANGE_PASSWORD[case]
    actor, watch = build()
    assert actor.sign_in() == "signed-in"
    watch.mark()
    assert actor.change_password(current, NEW_PASSWORD) == expected.outcome
    assert watch.effects() == expected.effects(adapter)


FORGOT_PASSWORD: dict[str, tuple[str, Expected]] = {
    # case: (address, expected): the same answer; a mail only where an account is
    "known": (
        "ada@example.com",
        Expected(
            "accepted", mails=(sent("ada@example.com", "Reset your password", "/reset-password/"),)
        ),
    ),
    "unknown": ("nobody@example.com", Expected("accepted")),
}


@pytest.mark.parametrize("case", FORGOT_PASSWORD)
def test_forgot_password(build: Build, adapter: str, case: str) -> None:
    address, expected = FORGOT_PASSWORD[case]
    actor, watch = build()
    watch.mark()
    assert actor.forgot_password(address) == expected.outcome
    assert watch.effects() == expected.effects(adapter)


def test_reset_password(build: Build) -> None:
    actor, watch = build()
    token = link_token(actor.app, "reset")
    watch.mark()
    assert actor.reset_password(token, NEW_PASSWORD) == "reset"
    assert watch.effects() == Effects(
        [(Event.PASSWORD_RESET, "ada", {})],
        [sent("ada@example.com", "Your password was reset")],
    )
    assert actor.other().sign_in("ada", NEW_PASSWORD) == "signed-in"


# -- sessions --------------------------------------------------------------------------------


def test_end_one_session(build: Build) -> None:
    actor, watch = build()
    other = actor.other()
    assert actor.sign_in() == "signed-in"
    assert other.sign_in() == "signed-in"
    mine, theirs = actor.session_id(), other.session_id()
    watch.mark()
    assert actor.end_session(theirs) == "ended"
    assert watch.effects() == Effects(
        [(Event.SESSION_REVOKED, "ada", {"count": 1, "scope": "one"})], []
    )
    assert live_sessions(actor.app) == {mine}


# Different by design: the page ends the *others* and keeps this browser (its session and
# trusted device); the API's logout-everywhere ends *all*, the caller's own among them (its
# device cannot be told apart from the others').
END_ALL: dict[str, tuple[str, int]] = {"page": ("others", 1), "api": ("all", 2)}


def test_end_all_sessions(build: Build, adapter: str) -> None:
    actor, watch = build()
    other = actor.other()
    assert actor.sign_in() == "signed-in"
    assert other.sign_in() == "signed-in"  # two sessions, two trusted devices
    mine = actor.session_id()
    watch.mark()
    assert actor.end_all_sessions() == "ended"
    scope, count = END_ALL[adapter]
    detail = {"count": count, "scope": scope}
    assert watch.effects() == Effects(
        [(Event.SESSION_REVOKED, "ada", detail), (Event.DEVICE_REVOKED, "ada", detail)], []
    )
    assert live_sessions(actor.app) == ({mine} if scope == "others" else set())


# -- the account's own changes ---------------------------------------------------------------

NEW_ADDRESS = "ada@example.org"
CHANGE_EMAIL: dict[str, tuple[str, str, Expected]] = {
    # case: (password, new address, expected)
    "right": (
        PASSWORD,
        NEW_ADDRESS,
        Expected(
            "requested",
            rows=((Event.EMAIL_CHANGE_REQUESTED, "ada", {"new": mask_email(NEW_ADDRESS)}),),
            mails=(
                sent(NEW_ADDRESS, "Confirm your new email address", "/confirm-email/"),
                sent("ada@example.com", "Your email address is about to change"),
            ),
        ),
    ),
    "wrong-password": ("not the password at all", NEW_ADDRESS, Expected("refused")),
    # Another account's address: refused before any mail, as any unusable address is.
    "taken": (PASSWORD, "grace@example.com", Expected("refused")),
}


@pytest.mark.parametrize("case", CHANGE_EMAIL)
def test_change_email(build: Build, adapter: str, case: str) -> None:
    password, address, expected = CHANGE_EMAIL[case]
    actor, watch = build()
    make_user(actor.app, "grace", "grace@example.com")
    assert actor.sign_in() == "signed-in"
    watch.mark()
    assert actor.change_email(password, address) == expected.outcome
    assert watch.effects() == expected.effects(adapter)


def test_confirm_the_new_address(build: Build) -> None:
    actor, watch = build()
    token = link_token(actor.app, f"change:{NEW_ADDRESS}")
    watch.mark()
    assert actor.confirm_email(token) == "changed"
    assert watch.effects() == Effects([(Event.EMAIL_CHANGED, "ada", {})], [])
    assert actor.other().sign_in(NEW_ADDRESS) == "signed-in"


def test_confirming_an_address_taken_meanwhile_changes_nothing(build: Build) -> None:
    actor, watch = build()
    token = link_token(actor.app, f"change:{NEW_ADDRESS}")
    make_user(actor.app, "grace", NEW_ADDRESS)
    watch.mark()
    assert actor.confirm_email(token) == "refused"
    assert watch.effects() == Effects([], [])
    assert actor.other().sign_in("ada@example.com") == "signed-in"


DELETE: dict[str, tuple[str, Expected]] = {
    "right": (PASSWORD, Expected("deleted", rows=((Event.ACCOUNT_DELETED, "ada", {}),))),
    "wrong-password": ("not the password at all", Expected("refused")),
}


@pytest.mark.parametrize("case", DELETE)
def test_delete_the_account(build: Build, adapter: str, case: str) -> None:
    password, expected = DELETE[case]
    actor, watch = build()
    assert actor.sign_in() == "signed-in"
    watch.mark()
    assert actor.delete_account(password) == expected.outcome
    assert watch.effects() == expected.effects(adapter)
    with actor.app.app_context():
        gone = get_state(actor.app).accounts.get_by_email("ada@example.com") is None
    assert gone == (expected.outcome == "deleted")
