"""The security log at ``/admin/audit``: filters, keyset pages, and the CSV download with
spreadsheet formulas neutralised; admins only."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state
from flask_portcullis.audit import spreadsheet_safe
from flask_portcullis.audit_events import Event

from .conftest import FakeClock, login, make_user
from .rows import events


def record(app: Flask, event: Event, user_id: int | None, ip: str, agent: str = "Test/1") -> None:
    with app.app_context():
        get_state(app).audit.record(event, user_id=user_id, ip=ip, user_agent=agent)


def rows_of(page: str) -> int:
    return page.count("<tr>") - 1  # the header row


def test_non_admins_get_403(app: Flask, user: int) -> None:
    client = app.test_client()
    login(client)
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit.csv").status_code == 403


def test_filters_by_account_event_ip_and_dates(app: Flask, clock: FakeClock, user: int) -> None:
    record(app, Event.SIGN_IN_FAILED, user, "203.0.113.9")
    clock.advance(days=2)
    record(app, Event.SIGN_IN_FAILED, None, "203.0.113.9")
    record(app, Event.PASSWORD_CHANGED, user, "198.51.100.1")
    make_user(app, "root", "root@example.com", roles=("admin",))
    console = app.test_client()
    login(console, "root")  # two days on: a session of today
    by_user = console.get("/admin/audit", query_string={"user": "ada"}).get_data(as_text=True)
    assert rows_of(by_user) == 2
    failed = console.get(
        "/admin/audit", query_string={"event": "sign-in-failed", "ip": "203.0.113.9"}
    ).get_data(as_text=True)
    assert rows_of(failed) == 2
    day = clock.now.date().isoformat()
    today = console.get("/admin/audit", query_string={"from": day, "to": day, "user": "ada"})
    assert rows_of(today.get_data(as_text=True)) == 1
    assert "Password changed" in today.get_data(as_text=True)


@pytest.mark.parametrize(
    "args",
    [
        {"user": "nobody-here"},
        {"event": "made-up"},
        {"from": "2026-13-45"},
        {"from": "2026-02-02", "to": "2026-01-01"},
    ],
)
def test_bad_filters_say_what_is_wrong(console: FlaskClient, args: dict[str, str]) -> None:
    response = console.get("/admin/audit", query_string=args)
    assert response.status_code == 400
    assert 'class="errors"' in response.get_data(as_text=True)
    assert console.get("/admin/audit.csv", query_string=args).status_code == 400


def test_pages_go_back_in_time_without_repeating(app: Flask, console: FlaskClient) -> None:
    for n in range(120):
        record(app, Event.THROTTLED, None, f"192.0.2.{n % 250}")
    seen: list[str] = []
    response = console.get("/admin/audit", query_string={"event": "throttled"})
    for _ in range(5):  # bounded
        page = response.get_data(as_text=True)
        seen += [line for line in page.splitlines() if "192.0.2." in line]
        older = [p for p in page.split('href="') if p.startswith("/admin/audit?before=")]
        if not older:
            break
        response = console.get(older[0].split('"')[0].replace("&amp;", "&"))
    assert len(seen) == 120


def test_the_csv_has_every_filtered_row_and_no_live_formulas(
    app: Flask, console: FlaskClient
) -> None:
    user_id = make_user(app, "eve", "eve@example.com")
    record(app, Event.SIGN_IN_FAILED, user_id, "203.0.113.5", agent='=HYPERLINK("x")')
    record(app, Event.SIGN_IN_FAILED, user_id, "203.0.113.5", agent="+cmd|' /C calc'!A0")
    record(app, Event.PASSWORD_CHANGED, user_id, "203.0.113.5")
    response = console.get(
        "/admin/audit.csv", query_string={"user": "eve", "event": "sign-in-failed"}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["at", "event", "user_id", "username", "ip", "user_agent", "detail"]
    body = table[1:]
    assert len(body) == 2
    assert {row[3] for row in body} == {"eve"}
    agents = sorted(row[5] for row in body)
    assert agents == ["'+cmd|' /C calc'!A0", '\'=HYPERLINK("x")']
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in body for cell in row)


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("ada", "ada"),
        ("", ""),
    ],
)
def test_spreadsheet_safe(value: str, safe: str) -> None:
    assert spreadsheet_safe(value) == safe


def test_a_deleted_accounts_events_still_show_by_id(app: Flask, console: FlaskClient) -> None:
    user_id = make_user(app, "gone", "gone@example.com")
    record(app, Event.SIGN_IN, user_id, "198.51.100.4")
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(user_id)
        assert user is not None
        state.accounts.delete(user)
    page = console.get("/admin/audit", query_string={"user": str(user_id)}).get_data(as_text=True)
    assert f"#{user_id} (deleted)" in page
    assert events(app, Event.SIGN_IN)
