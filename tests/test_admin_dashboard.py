"""The admin dashboard ``/admin/``: counts, and SVG charts of the last 30 days drawn on the
server (no script, no inline style), each with its figures as a table."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.charts import Bar, bar_chart

from .conftest import FakeClock, login, make_user


def record(app: Flask, event: Event, **detail: str) -> None:
    with app.app_context():
        get_state(app).audit.record(event, user_id=None, ip="192.0.2.1", **detail)


def row(page: str, day: str) -> list[str]:
    found = re.search(rf"<tr><td>{day}</td>((?:<td>\d+</td>)+)</tr>", page)
    assert found, day
    return re.findall(r"<td>(\d+)</td>", found.group(1))


def test_counts_and_the_last_30_days(app: Flask, clock: FakeClock, user: int) -> None:
    yesterday = clock.now.date().isoformat()
    record(app, Event.SIGN_IN_FAILED, reason="password")
    record(app, Event.SIGN_IN_FAILED, reason="password")
    record(app, Event.SIGN_IN_FAILED, reason="second-factor")
    clock.advance(days=1)
    today = clock.now.date().isoformat()
    record(app, Event.THROTTLED)
    make_user(app, "root", "root@example.com", roles=("admin",))
    console = app.test_client()
    login(console, "root")  # today's sign-in
    page = console.get("/admin/").get_data(as_text=True)
    assert "<dd>2 (2 active)</dd>" in page  # ada and root
    assert re.search(r"Throttled requests today</dt><dd>1<", page)
    assert row(page, yesterday) == ["0", "3", "0"]
    assert row(page, today)[0] == "1"
    assert page.count('<svg class="chart"') == 4
    assert "<title>Failed sign-ins per day</title>" in page
    assert f"<title>{yesterday}: 3</title>" in page
    assert "<td>password</td><td>2</td>" in page
    assert "<td>second-factor</td><td>1</td>" in page
    assert "<script" not in page.split("<main")[1]
    assert " style=" not in page


def test_the_chart_escapes_its_text() -> None:
    svg = str(bar_chart('a<b"c', [Bar("<x>", 3), Bar("y", 0)]))
    assert "<x>" not in svg
    assert "&lt;x&gt;: 3" in svg
    assert 'aria-label="a&lt;b&quot;c"' in svg
    assert svg.count("<rect") == 2


def test_non_admins_get_403(app: Flask, user: int) -> None:
    client = app.test_client()
    login(client)
    assert client.get("/admin/").status_code == 403


def test_an_empty_site_draws_empty_charts(console: FlaskClient) -> None:
    page = console.get("/admin/").get_data(as_text=True)
    assert page.count('<svg class="chart"') == 3  # no reasons: no fourth chart
    assert "None in the last 30 days." in page
