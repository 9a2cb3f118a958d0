"""The device sessions page ``/account/sessions``: every signed-in device of the user with its
browser, IP, created and last-seen times and "this device"; ending one device or all others,
which takes effect on that device's next request."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event

from .conftest import (
    PASSWORD,
    AppFactory,
    FakeClock,
    csrf_token,
    login,
    make_user,
    signed_in,
    submit,
)
from .rows import session_count
from .stores import STORES, store_config

LAPTOP = ("198.51.100.10", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
PHONE = ("198.51.100.20", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) Safari/604.1")
TABLET = ("203.0.113.30", "Mozilla/5.0 (Linux; Android 14) Chrome/126.0")
ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
CELL = re.compile(r"<td>(.*?)</td>", re.S)
SESSION_FIELD = re.compile(r'name="session" value="([0-9a-f]{64})"')
SIGN_OUT_OTHERS = "Sign out every other device"


@pytest.fixture(params=STORES)
def app(request: pytest.FixtureRequest, make_demo_app: AppFactory, clock: FakeClock) -> Flask:
    """The demo app on each session store in turn: every promise here holds for all three."""
    return make_demo_app("", clock=clock, **store_config(request, request.param))


@dataclass(frozen=True)
class DeviceRow:
    """One row of the sessions table, as the user sees it."""

    browser: str
    ip: str
    created: str
    last_seen: str
    this_device: bool
    record_id: str | None  # the value of its "Sign out" button; None for this device


def device(app: Flask, ip_and_agent: tuple[str, str], identity: str = "ada") -> FlaskClient:
    """A new client with its own IP and browser, signed in as ``identity``."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=ip_and_agent[0], HTTP_USER_AGENT=ip_and_agent[1])
    assert login(client, identity).status_code == 302
    return client


def devices_page(client: FlaskClient) -> str:
    response = client.get("/account/sessions")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def device_rows(client: FlaskClient) -> list[DeviceRow]:
    tbody = devices_page(client).split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    found = []
    for row in ROW.findall(tbody):
        cells = CELL.findall(row)
        browser_cell = cells[0]
        browser = re.split(r"\s*<span", browser_cell, maxsplit=1)[0]
        field = SESSION_FIELD.search(row)
        found.append(
            DeviceRow(
                browser=html.unescape(browser).strip(),
                ip=html.unescape(cells[1]).strip(),
                created=time_of(cells[2]),
                last_seen=time_of(cells[3]),
                this_device="this device" in browser_cell,
                record_id=field.group(1) if field else None,
            )
        )
    return found


def time_of(cell: str) -> str:
    match = re.search(r'<time datetime="([^"]+)">([^<]+)</time>', cell)
    assert match, cell
    return match.group(2)


def revoke(client: FlaskClient, target: str) -> str:
    """Press a "Sign out" button on the sessions page; return the flash message shown after."""
    response = submit(client, "/account/sessions", {"session": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/sessions"
    page = devices_page(client)
    match = re.search(r'<p class="flash[^"]*" role="\w+">([^<]*)</p>', page)
    assert match, page
    return html.unescape(match.group(1))


def revocations(app: Flask) -> int:
    with app.app_context():
        return len(get_state(app).audit.search(event=str(Event.SESSION_REVOKED)))


# -- the list --------------------------------------------------------------------------


def test_lists_each_device_with_this_device_marked(app: Flask, clock: FakeClock, user: int) -> None:
    laptop = device(app, LAPTOP)
    clock.advance(minutes=7)
    phone = device(app, PHONE)
    clock.advance(minutes=5)
    laptop.get("/account")  # used again: last seen moves, created does not

    rows = device_rows(laptop)
    assert rows == [
        DeviceRow(LAPTOP[1], LAPTOP[0], "2026-01-01 12:00 UTC", "2026-01-01 12:12 UTC", True, None),
        DeviceRow(
            PHONE[1],
            PHONE[0],
            "2026-01-01 12:07 UTC",
            "2026-01-01 12:07 UTC",
            False,
            rows[1].record_id,
        ),
    ]
    assert rows[1].record_id is not None
    page = devices_page(laptop)
    assert page.count("this device") == 1
    assert "2026-01-01 12:00 UTC" in page
    assert SIGN_OUT_OTHERS in page

    # The phone sees the same two devices, with itself marked.
    from_phone = device_rows(phone)
    assert {(r.ip, r.this_device) for r in from_phone} == {(LAPTOP[0], False), (PHONE[0], True)}


def test_a_single_device_has_nothing_to_sign_out(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    [row] = device_rows(laptop)
    assert row.this_device
    assert row.record_id is None
    page = devices_page(laptop)
    assert SIGN_OUT_OTHERS not in page
    assert 'name="session"' not in page


def test_only_own_devices_are_listed(app: Flask, user: int) -> None:
    make_user(app, "bob", "bob@example.com")
    device(app, TABLET, "bob")
    laptop = device(app, LAPTOP)
    page = devices_page(laptop)
    assert TABLET[0] not in page
    assert "Android" not in page
    assert len(device_rows(laptop)) == 1


def test_browser_text_is_escaped(app: Flask, user: int) -> None:
    device(app, ("192.0.2.1", '<script>alert("x")</script> Evil/1.0'))
    laptop = device(app, LAPTOP)
    page = devices_page(laptop)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_page_needs_sign_in(app: Flask, client: FlaskClient, user: int, method: str) -> None:
    if method == "GET":
        response = client.get("/account/sessions")
    else:
        token = csrf_token(client, "/login")
        response = client.post("/account/sessions", data={"csrf_token": token, "session": "others"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Faccount%2Fsessions"


# -- ending one device ----------------------------------------------------------------


def test_revoking_one_device_signs_it_out_on_its_next_request(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    tablet = device(app, TABLET)
    [phone_id] = [r.record_id for r in device_rows(laptop) if r.ip == PHONE[0]]
    assert phone_id is not None

    assert revoke(laptop, phone_id) == "That device is signed out."

    response = phone.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert signed_in(laptop)
    assert signed_in(tablet)
    assert {r.ip for r in device_rows(laptop)} == {LAPTOP[0], TABLET[0]}
    # Ending it again changes nothing.
    assert revoke(laptop, phone_id) == "That device was already signed out."
    assert signed_in(tablet)
    assert revocations(app) == 1


def test_revoking_all_others_keeps_this_device(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    tablet = device(app, TABLET)

    assert revoke(phone, "others") == "Signed out 2 other devices."

    assert signed_in(phone)
    assert not signed_in(laptop)
    assert not signed_in(tablet)
    [row] = device_rows(phone)
    assert (row.ip, row.this_device) == (PHONE[0], True)
    assert revoke(phone, "others") == "Signed out 0 other devices."


def test_revoking_others_leaves_other_users_alone(app: Flask, user: int) -> None:
    make_user(app, "bob", "bob@example.com")
    bob = device(app, TABLET, "bob")
    laptop = device(app, LAPTOP)
    device(app, PHONE)
    assert revoke(laptop, "others") == "Signed out 1 other device."
    assert signed_in(bob)


def test_this_device_cannot_revoke_itself_here(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    [own_id] = [r.record_id for r in device_rows(phone) if r.ip == LAPTOP[0]]
    assert own_id is not None

    assert revoke(laptop, own_id) == "To sign out this device, use Sign out."

    assert signed_in(laptop)
    assert signed_in(phone)
    assert session_count(app, user) == 2
    assert revocations(app) == 0


def test_another_users_session_cannot_be_revoked(app: Flask, user: int) -> None:
    make_user(app, "bob", "bob@example.com")
    bob_tablet = device(app, TABLET, "bob")
    bob_phone = device(app, PHONE, "bob")
    [bob_phone_id] = [r.record_id for r in device_rows(bob_tablet) if r.ip == PHONE[0]]
    assert bob_phone_id is not None
    laptop = device(app, LAPTOP)

    assert revoke(laptop, bob_phone_id) == "That device was already signed out."

    assert signed_in(bob_phone)
    assert signed_in(bob_tablet)
    assert signed_in(laptop)
    assert revocations(app) == 0


@pytest.mark.parametrize("target", ["", "nonsense", "0" * 64, "OTHERS", "others "])
def test_unknown_targets_change_nothing(app: Flask, user: int, target: str) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    assert revoke(laptop, target) == "That device was already signed out."
    assert signed_in(phone)
    assert signed_in(laptop)


def test_revoking_needs_the_csrf_token(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    [phone_id] = [r.record_id for r in device_rows(laptop) if r.record_id]
    assert phone_id is not None
    for data in ({"session": phone_id}, {"session": "others"}):
        response = laptop.post("/account/sessions", data=data)
        assert response.status_code == 400
    assert signed_in(phone)
    assert session_count(app, user) == 2


def test_a_revoked_device_can_sign_in_again_as_a_new_session(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    revoke(laptop, "others")
    assert not signed_in(phone)
    assert login(phone).status_code == 302
    assert signed_in(phone)
    assert len(device_rows(laptop)) == 2


def test_the_admin_cli_ends_every_session(app: Flask, runner: FlaskCliRunner, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    result = runner.invoke(args=["users", "revoke-sessions", "ada"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ended 2 session(s) of ada"
    assert not signed_in(laptop)
    assert not signed_in(phone)
    assert session_count(app, user) == 0


def test_a_password_change_leaves_only_this_device(app: Flask, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    new = "another long passphrase for ada"
    data = {"current_password": PASSWORD, "new_password": new, "new_password_confirm": new}
    assert submit(laptop, "/account/password", data).status_code == 302
    assert not signed_in(phone)
    [row] = device_rows(laptop)
    assert (row.ip, row.this_device) == (LAPTOP[0], True)


def test_timed_out_devices_are_not_listed(app: Flask, clock: FakeClock, user: int) -> None:
    laptop = device(app, LAPTOP)
    phone = device(app, PHONE)
    for _ in range(3):  # the laptop stays in use; the phone is left alone for 45 minutes
        clock.advance(minutes=15)
        assert signed_in(laptop)
    assert [r.ip for r in device_rows(laptop)] == [LAPTOP[0]]
    # Ending devices wants a recent password (ASVS 3.7.1); 45 minutes is not recent.
    assert submit(laptop, "/reauthenticate", {"password": PASSWORD}).status_code == 302
    assert revoke(laptop, "others") == "Signed out 0 other devices."
    assert not signed_in(phone)
