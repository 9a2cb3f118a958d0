"""Two-factor sign-in: TOTP set-up with a locally drawn QR code, the second sign-in step on the
pages and the JSON API, single-use recovery codes, rate limits and audit events.

Every TOTP code here comes from the few lines of RFC 6238 below (checked against the RFC's own
test vectors), never from pyotp, the library the package uses. Time is the app's FakeClock: a
code is computed for ``clock.now``, and moving the clock moves the 30-second steps.
"""

from __future__ import annotations

import base64
import contextlib
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import segno
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.two_factor import TwoFactorService

from .conftest import (
    PASSWORD,
    REAL_LIMITS,
    AppFactory,
    FakeClock,
    Mail,
    Outbox,
    csrf_token,
    login,
    make_user,
    path_of,
    signed_in,
    submit,
)
from .rows import events, get_user, stored_two_factor
from .totp import STEP, b32key, code_for, totp
from .two_factor_steps import (
    RECOVERY_CODE,
    SECOND_STEP,
    SETUP,
    Enrolled,
    enroll,
    recovery_codes_of,
    setup_page,
)

API = "/api/v1"
PROBLEM = "application/problem+json"
RECOVERY = "/account/recovery-codes"
HOME = "/"  # where the demo lands after sign-in (PORTCULLIS_POST_LOGIN_VIEW="index")
WINDOW = 5 * 60
NEW_PASSWORD = "a brand new passphrase for ada"
WRONG_PASSWORD = "definitely not the right passphrase"
# The shipped limits (conftest relaxes them for the rest of the suite), with only two free
# failures so the delays start early.
REAL_LIMITS_EARLY_DELAYS = {**REAL_LIMITS, "PORTCULLIS_LOGIN_FREE_FAILURES": 2}
CODES_LEFT = re.compile(r"You have <strong>(\d+)</strong> unused recovery code")


# -- the tests' own RFC 6238 (tests/totp.py) against the RFC's vectors -------------------------


RFC_KEY = b"12345678901234567890"
# RFC 6238 Appendix B, the SHA-1 column: Unix time -> 8-digit TOTP.
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_the_tests_totp_matches_the_rfc_6238_vectors(unix_time: int, expected: str) -> None:
    assert totp(RFC_KEY, unix_time, digits=8) == expected
    assert totp(RFC_KEY, unix_time) == expected[-6:]  # 6 digits: the last six of the eight
    secret = base64.b32encode(RFC_KEY).decode()
    assert totp(b32key(secret), unix_time) == expected[-6:]


# -- helpers ------------------------------------------------------------------------------------


def sign_out(client: FlaskClient) -> None:
    assert submit(client, "/logout", {}).status_code == 302
    assert not signed_in(client)


def password_step(client: FlaskClient, *, remember: bool = False, path: str = "/login") -> None:
    response = login(client, remember=remember, path=path)
    assert path_of(response) == SECOND_STEP, response.get_data(as_text=True)


def second_step(client: FlaskClient, code: str) -> TestResponse:
    return submit(client, SECOND_STEP, {"code": code})


def sign_in_with(client: FlaskClient, code: str) -> TestResponse:
    password_step(client)
    return second_step(client, code)


def codes_left(client: FlaskClient) -> int:
    """The count of unused recovery codes, as the two-factor page and the recovery-codes page
    both show it."""
    counts = []
    for path in (SETUP, RECOVERY):
        page = client.get(path)
        assert page.status_code == 200
        match = CODES_LEFT.search(page.get_data(as_text=True))
        assert match, page.get_data(as_text=True)
        counts.append(int(match.group(1)))
    assert counts[0] == counts[1], counts
    return counts[0]


def manage(client: FlaskClient, action: str, password: str = PASSWORD) -> TestResponse:
    return submit(client, SETUP, {"password": password, "action": action})


def regenerate(client: FlaskClient) -> TestResponse:
    """Press "Make new recovery codes" on /account/recovery-codes."""
    return submit(client, RECOVERY, {})


def dump(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


@pytest.fixture
def enrolled(auth_client: FlaskClient, clock: FakeClock) -> Enrolled:
    """ada has TOTP on, is signed out, and the clock is a few steps past the enabling code."""
    factor = enroll(auth_client, clock)
    sign_out(auth_client)
    clock.advance(seconds=4 * STEP)
    return factor


# -- set-up -------------------------------------------------------------------------------------


def test_setup_shows_the_secret_and_a_qr_code_of_the_same_otpauth_uri(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    secret, qr = setup_page(auth_client)
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert len(b32key(secret)) == 20  # 160 bits
    issuer = get_state(app).settings.site_name
    uri = f"otpauth://totp/{quote(issuer)}:ada?secret={secret}&issuer={quote(issuer)}"
    ada = get_user(app, user)
    assert ada is not None
    with app.app_context():
        assert get_state(app).two_factor.uri(ada, secret) == uri
    # The image is segno's QR code of exactly that URI (same matrix, drawn the same way).
    expected = segno.make(uri, error="m")
    assert qr == expected.svg_data_uri(scale=5, dark="#1d2330")
    assert qr.startswith("data:image/svg+xml")
    assert f"secret={secret}" in uri
    # A QR code of any other secret is a different picture.
    other = segno.make(uri.replace(secret, "A" * 32), error="m")
    assert qr != other.svg_data_uri(scale=5, dark="#1d2330")
    # Drawn locally: no external image service.
    assert "http" not in qr.split(",", 1)[0]


def test_setup_keeps_its_secret_across_reloads(auth_client: FlaskClient) -> None:
    first, _ = setup_page(auth_client)
    second, _ = setup_page(auth_client)
    assert first == second


def test_a_wrong_code_does_not_enable_and_stores_nothing(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    secret, _ = setup_page(auth_client)
    right = code_for(secret, clock)
    # The right code in Arabic-Indic digits is digits to Python, but never a code of ours.
    arabic = right.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for wrong in (
        wrong_code(secret, clock),
        code_for(secret, clock, 2),
        "abc",
        right + "0",
        arabic,
    ):
        response = submit(auth_client, SETUP, {"code": wrong})
        assert response.status_code == 422
        assert "Turn on two-factor sign-in" in response.get_data(as_text=True)
    assert stored_two_factor(app, user) == (0, 0)
    assert events(app, Event.TWO_FACTOR_ENABLED) == []
    assert setup_page(auth_client)[0] == secret  # the same secret is still on offer
    sign_out(auth_client)
    assert path_of(login(auth_client)) == HOME  # still one step


def test_a_right_code_enables_and_shows_ten_recovery_codes_once(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    factor = enroll(auth_client, clock)
    codes = factor.recovery_codes
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in codes)
    assert stored_two_factor(app, user) == (1, 10)
    assert events(app, Event.TWO_FACTOR_ENABLED) == [(user, {})]
    # Afterwards the page manages the factor: no codes, no secret, no QR code.
    page = auth_client.get(SETUP).get_data(as_text=True)
    assert "Two-factor sign-in is on" in page
    assert CODES_LEFT.search(page)
    assert codes_left(auth_client) == 10
    assert not any(code in page for code in codes)
    assert factor.secret not in page
    assert "data:image/svg+xml" not in page


def test_the_secret_and_the_recovery_codes_are_not_stored_in_the_clear(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int, tmp_path: Path
) -> None:
    factor = enroll(auth_client, clock)
    with app.app_context():
        state = get_state(app)
        stored = state.db.session.get(state.models.TwoFactor, user)
        assert stored is not None
        column = stored.secret
    assert factor.secret not in column
    assert factor.secret.lower() not in column
    everything = dump(tmp_path / "test.db")
    assert "two_factor" in everything
    assert column in everything
    raw = b32key(factor.secret)
    for form in (factor.secret, factor.secret.lower(), raw.hex(), base64.b64encode(raw).decode()):
        assert form not in everything
    for code in factor.recovery_codes:
        assert code not in everything
        assert code.replace("-", "") not in everything


def test_the_code_that_enabled_the_factor_cannot_sign_in(
    auth_client: FlaskClient, clock: FakeClock
) -> None:
    factor = enroll(auth_client, clock)
    sign_out(auth_client)
    assert sign_in_with(auth_client, code_for(factor.secret, clock)).status_code == 422
    assert not signed_in(auth_client)


# -- the two-step sign-in -----------------------------------------------------------------------


def test_the_password_alone_does_not_sign_in(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    sign_ins = len(events(app, Event.SIGN_IN))
    password_step(client)
    assert not signed_in(client)  # /account redirects to /login
    with app.app_context():
        assert get_state(app).sessions.list_for(user) == []
    assert len(events(app, Event.SIGN_IN)) == sign_ins
    page = client.get(SECOND_STEP)
    assert page.status_code == 200
    assert 'name="code"' in page.get_data(as_text=True)

    response = second_step(client, code_for(enrolled.secret, clock))
    assert path_of(response) == HOME
    assert signed_in(client)
    # The pending state is used up: the second step now sends back to the start.
    assert path_of(client.get(SECOND_STEP)) == "/login"


def test_without_a_password_there_is_no_second_step(client: FlaskClient) -> None:
    assert path_of(client.get(SECOND_STEP)) == "/login"


def test_remember_carries_through_to_a_persistent_cookie(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    password_step(client, remember=True)
    pending = client.get_cookie("session")
    assert pending is not None
    assert pending.expires is None
    assert path_of(second_step(client, code_for(enrolled.secret, clock))) == HOME
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.expires is not None


def test_without_remember_the_cookie_ends_with_the_browser(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    password_step(client)
    assert path_of(second_step(client, code_for(enrolled.secret, clock))) == HOME
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.expires is None


def test_next_carries_through(client: FlaskClient, clock: FakeClock, enrolled: Enrolled) -> None:
    password_step(client, path="/login?next=/account/sessions")
    response = second_step(client, code_for(enrolled.secret, clock))
    assert response.headers["Location"] == "/account/sessions"


def test_an_unsafe_next_is_dropped(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    password_step(client, path="/login?next=//evil.example/x")
    response = second_step(client, code_for(enrolled.secret, clock))
    assert path_of(response) == HOME
    assert "evil" not in response.headers["Location"]


def test_the_pending_state_lasts_five_minutes(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    password_step(client)
    clock.advance(seconds=WINDOW - 10)
    assert path_of(second_step(client, code_for(enrolled.secret, clock))) == HOME


def test_the_pending_state_expires_after_five_minutes(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    password_step(client)
    token = csrf_token(client, SECOND_STEP)
    clock.advance(seconds=WINDOW + 1)
    code = code_for(enrolled.secret, clock)
    response = client.post(SECOND_STEP, data={"csrf_token": token, "code": code})
    assert path_of(response) == "/login"
    assert not signed_in(client)
    assert path_of(client.get(SECOND_STEP)) == "/login"
    # Starting again works, with the same (still unused) code.
    assert path_of(sign_in_with(client, code)) == HOME


@pytest.mark.parametrize("steps", [-1, 0, 1])
def test_one_step_of_drift_either_way_is_accepted(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled, steps: int
) -> None:
    assert path_of(sign_in_with(client, code_for(enrolled.secret, clock, steps))) == HOME


@pytest.mark.parametrize("steps", [-2, 2])
def test_two_steps_away_is_refused(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled, steps: int
) -> None:
    response = sign_in_with(client, code_for(enrolled.secret, clock, steps))
    assert response.status_code == 422
    assert "not right" in response.get_data(as_text=True)
    assert not signed_in(client)
    # The refusal used nothing up: the current code still works.
    assert path_of(second_step(client, code_for(enrolled.secret, clock))) == HOME


def test_a_code_is_refused_the_second_time_even_after_signing_out(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    code = code_for(enrolled.secret, clock)
    assert path_of(sign_in_with(client, code)) == HOME
    sign_out(client)
    response = sign_in_with(client, code)
    assert response.status_code == 422
    assert not signed_in(client)
    # Still the same step: only a code of a later step gets in.
    assert path_of(second_step(client, code_for(enrolled.secret, clock, 1))) == HOME


def test_a_step_before_the_last_used_one_is_refused(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    assert path_of(sign_in_with(client, code_for(enrolled.secret, clock, 1))) == HOME
    sign_out(client)
    for steps in (0, -1):  # both within the drift window, both older than the last used
        assert sign_in_with(client, code_for(enrolled.secret, clock, steps)).status_code == 422
    clock.advance(seconds=2 * STEP)  # the step after the last used one is accepted again
    assert path_of(second_step(client, code_for(enrolled.secret, clock))) == HOME


def test_a_used_code_is_refused_in_the_api_too(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    code = code_for(enrolled.secret, clock)
    assert path_of(sign_in_with(client, code)) == HOME
    challenge = api_challenge(client)
    response = client.post(f"{API}/login/two-factor", json={"challenge": challenge, "code": code})
    assert response.status_code == 401


def test_the_same_code_racing_in_two_browsers_signs_in_only_once(
    app: Flask, clock: FakeClock, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    browsers = [app.test_client(), app.test_client()]
    tokens: list[str] = []
    for browser in browsers:
        password_step(browser)
        tokens.append(csrf_token(browser, SECOND_STEP))
    code = code_for(enrolled.secret, clock)
    # Hold both requests after they have read the stored factor, as two workers would be.
    barrier = threading.Barrier(2)
    original = TwoFactorService._matching_step

    def meet_then_match(
        self: TwoFactorService, secret: str, code: str, *, after: int
    ) -> int | None:
        # A timeout: an implementation that serialises the two requests goes on alone.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return original(self, secret, code, after=after)

    monkeypatch.setattr(TwoFactorService, "_matching_step", meet_then_match)
    statuses: list[int] = []

    def attempt(browser: FlaskClient, token: str) -> None:
        response = browser.post(SECOND_STEP, data={"csrf_token": token, "code": code})
        statuses.append(response.status_code)

    threads = [
        threading.Thread(target=attempt, args=pair) for pair in zip(browsers, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(statuses) == [302, 422]


# -- recovery codes -----------------------------------------------------------------------------


def test_a_recovery_code_works_once(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    code = enrolled.recovery_codes[0]
    assert path_of(sign_in_with(client, code)) == HOME
    assert codes_left(client) == 9
    sign_out(client)
    for again in (code, code.upper(), code.replace("-", "")):
        response = sign_in_with(client, again)
        assert response.status_code == 422
        assert "not right, or was used already" in response.get_data(as_text=True)
    assert not signed_in(client)
    assert path_of(second_step(client, enrolled.recovery_codes[1])) == HOME
    assert codes_left(client) == 8


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code.upper(),
        lambda code: code.replace("-", ""),
        lambda code: code.replace("-", " "),
        lambda code: " " + code.upper().replace("-", " - ") + " ",
    ],
    ids=["upper", "no-dashes", "spaces", "mixed"],
)
def test_recovery_codes_ignore_case_dashes_and_spaces(
    client: FlaskClient, enrolled: Enrolled, typed: Any
) -> None:
    assert path_of(sign_in_with(client, typed(enrolled.recovery_codes[3]))) == HOME


def test_a_made_up_recovery_code_is_refused(client: FlaskClient, enrolled: Enrolled) -> None:
    assert sign_in_with(client, "aaaa-bbbb-cccc-dddd").status_code == 422
    assert not signed_in(client)


def test_regenerating_wants_a_recent_sign_in_and_voids_the_old_codes(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    old = enrolled.recovery_codes
    assert path_of(sign_in_with(client, old[0])) == HOME
    assert codes_left(client) == 9
    token = csrf_token(client, RECOVERY)

    clock.advance(minutes=11)  # past the freshness window
    stale = client.get(RECOVERY)
    assert stale.status_code == 302
    assert stale.headers["Location"] == "/reauthenticate?next=/account/recovery-codes"
    refused = client.post(RECOVERY, data={"csrf_token": token})
    assert refused.headers["Location"] == stale.headers["Location"]
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == []
    wrong = submit(client, stale.headers["Location"], {"password": WRONG_PASSWORD})
    assert wrong.status_code == 422
    back = submit(client, stale.headers["Location"], {"password": PASSWORD})
    assert back.headers["Location"] == RECOVERY
    assert codes_left(client) == 9

    new = recovery_codes_of(regenerate(client))
    assert len(new) == 10
    assert not set(new) & set(old)
    assert codes_left(client) == 10
    assert not any(code in client.get(SETUP).get_data(as_text=True) for code in new)
    assert not any(code in client.get(RECOVERY).get_data(as_text=True) for code in new)
    sign_out(client)
    assert sign_in_with(client, old[1]).status_code == 422  # the old set is void
    assert path_of(second_step(client, new[0])) == HOME
    assert codes_left(client) == 9


def test_regenerating_needs_the_forms_csrf_token(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    assert path_of(sign_in_with(client, code_for(enrolled.secret, clock))) == HOME
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(RECOVERY, data=data)
        assert refused.status_code == 400  # the app-wide CSRF check turns it away
        assert RECOVERY_CODE.search(refused.get_data(as_text=True)) is None
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == []
    assert codes_left(client) == 10


def test_the_two_factor_page_links_to_the_recovery_codes_page_and_has_no_form_of_its_own(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    assert path_of(sign_in_with(client, code_for(enrolled.secret, clock))) == HOME
    page = client.get(SETUP).get_data(as_text=True)
    assert f'<a href="{RECOVERY}">Make new recovery codes</a>' in page
    assert 'value="regenerate"' not in page
    # A page cached from before, posted with the password: sent to the new page, nothing made.
    old_form = manage(client, "regenerate")
    assert old_form.status_code == 303
    assert old_form.headers["Location"] == RECOVERY
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == []
    assert stored_two_factor(app, user) == (1, 10)
    assert codes_left(client) == 10


def test_disabling_needs_the_password_and_then_sign_in_is_one_step(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    assert path_of(sign_in_with(client, code_for(enrolled.secret, clock))) == HOME
    refused = manage(client, "disable", WRONG_PASSWORD)
    assert refused.status_code == 422
    assert stored_two_factor(app, user) == (1, 10)
    assert events(app, Event.TWO_FACTOR_DISABLED) == []

    assert path_of(manage(client, "disable")) == "/account"
    assert stored_two_factor(app, user) == (0, 0)  # the recovery codes go too
    sign_out(client)
    assert path_of(login(client)) == HOME  # one step again
    assert signed_in(client)
    # Setting it up again offers a new secret.
    assert setup_page(client)[0] != enrolled.secret


def notices(outbox: Outbox, words: str) -> list[Mail]:
    """The mails to ada that mention ``words`` (waiting a moment for them)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [m for m in outbox.to("ada@example.com") if words in m.text.lower()]
        if found:
            return found
        time.sleep(0.02)
    return []


def test_using_a_recovery_code_mails_the_owner(
    client: FlaskClient, enrolled: Enrolled, outbox: Outbox
) -> None:
    outbox.clear()
    assert path_of(sign_in_with(client, enrolled.recovery_codes[0])) == HOME
    (mail,) = notices(outbox, "recovery code was used")
    assert "9 unused codes" in mail.text


def test_regenerating_recovery_codes_mails_the_owner(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled, outbox: Outbox
) -> None:
    assert path_of(sign_in_with(client, code_for(enrolled.secret, clock))) == HOME
    outbox.clear()
    new = recovery_codes_of(regenerate(client))
    (mail,) = notices(outbox, "new recovery codes")
    assert not any(code in mail.text or code in mail.html for code in new)  # never mailed


# -- rate limits --------------------------------------------------------------------------------


@pytest.fixture
def limited(make_demo_app: AppFactory, clock: FakeClock) -> tuple[Flask, FlaskClient, Enrolled]:
    """An app with the real sign-in limits (two free failures) and ada enrolled, signed out."""
    app = make_demo_app("limited", clock=clock, mail=False, **REAL_LIMITS_EARLY_DELAYS)
    make_user(app)
    client = app.test_client()
    assert path_of(login(client)) == HOME
    factor = enroll(client, clock)
    sign_out(client)
    clock.advance(seconds=4 * STEP)
    return app, client, factor


def wrong_code(secret: str, clock: FakeClock) -> str:
    near = {code_for(secret, clock, steps) for steps in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


def test_wrong_codes_are_rate_limited_like_passwords(
    limited: tuple[Flask, FlaskClient, Enrolled], clock: FakeClock
) -> None:
    app, client, factor = limited
    password_step(client)
    statuses: list[int] = []
    for _ in range(6):
        response = second_step(client, wrong_code(factor.secret, clock))
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[:2] == [422, 422]  # the free failures
    assert statuses[-1] == 429, statuses
    # While the delay runs, even the right code is turned away.
    response = second_step(client, code_for(factor.secret, clock))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert not signed_in(client)
    assert events(app, Event.THROTTLED)
    failed = events(app, Event.SIGN_IN_FAILED)
    assert [d["reason"] for _, d in failed] == ["second-factor"] * (len(statuses) - 1)


def test_wrong_api_codes_are_rate_limited_like_passwords(
    limited: tuple[Flask, FlaskClient, Enrolled], clock: FakeClock
) -> None:
    _, client, factor = limited
    challenge = api_challenge(client)
    statuses: list[int] = []
    for _ in range(6):
        body = {"challenge": challenge, "code": wrong_code(factor.secret, clock)}
        response = client.post(f"{API}/login/two-factor", json=body)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[:2] == [401, 401]
    assert statuses[-1] == 429, statuses
    body = {"challenge": challenge, "code": code_for(factor.secret, clock)}
    response = client.post(f"{API}/login/two-factor", json=body)
    assert response.status_code == 429
    assert response.mimetype == PROBLEM
    assert int(response.headers["Retry-After"]) >= 1


def test_re_entering_the_password_does_not_reset_the_count_of_wrong_codes(
    limited: tuple[Flask, FlaskClient, Enrolled], clock: FakeClock
) -> None:
    _, client, factor = limited
    statuses: list[int] = []
    for _ in range(4):  # 4 passwords: under the 10-per-15-minutes limit per account and client
        response = login(client)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
        assert path_of(response) == SECOND_STEP
        for _ in range(2):  # the free failures, every time
            statuses.append(second_step(client, wrong_code(factor.secret, clock)).status_code)
    # Eight wrong codes in a row with two free failures: something must have been slowed down.
    assert 429 in statuses, statuses


# -- audit --------------------------------------------------------------------------------------


def test_every_factor_change_and_use_is_audited(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    client = auth_client
    factor = enroll(client, clock)
    assert events(app, Event.TWO_FACTOR_ENABLED) == [(user, {})]
    sign_out(client)
    clock.advance(seconds=4 * STEP)

    password_step(client)
    assert second_step(client, wrong_code(factor.secret, clock)).status_code == 422
    assert events(app, Event.SIGN_IN_FAILED) == [(user, {"reason": "second-factor"})]
    before = len(events(app, Event.SIGN_IN))
    assert path_of(second_step(client, code_for(factor.secret, clock))) == HOME
    sign_ins = events(app, Event.SIGN_IN)
    assert len(sign_ins) == before + 1
    assert sign_ins[-1] == (user, {"remember": False, "factor": "totp"})
    sign_out(client)

    password_step(client, remember=True)
    assert path_of(second_step(client, factor.recovery_codes[0])) == HOME
    assert events(app, Event.RECOVERY_CODE_USED) == [(user, {})]
    assert events(app, Event.SIGN_IN)[-1] == (user, {"remember": True, "factor": "recovery"})

    recovery_codes_of(regenerate(client))
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == [(user, {})]
    assert path_of(manage(client, "disable")) == "/account"
    assert events(app, Event.TWO_FACTOR_DISABLED) == [(user, {})]


# -- JSON API -----------------------------------------------------------------------------------


def api_login(client: FlaskClient, password: str = PASSWORD) -> TestResponse:
    return client.post(f"{API}/login", json={"identity": "ada", "password": password})


def api_challenge(client: FlaskClient) -> str:
    response = api_login(client)
    assert response.status_code == 202, response.get_data(as_text=True)
    challenge = response.get_json()["challenge"]
    assert isinstance(challenge, str)
    return challenge


def api_step(client: FlaskClient, challenge: str, code: str) -> TestResponse:
    return client.post(f"{API}/login/two-factor", json={"challenge": challenge, "code": code})


def assert_problem(response: TestResponse, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == code


def test_api_login_answers_a_challenge_and_no_tokens(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    sign_ins = len(events(app, Event.SIGN_IN))
    response = api_login(client)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"challenge", "expires_in", "detail"}
    assert body["expires_in"] == WINDOW
    assert body["challenge"]
    assert "access_token" not in response.get_data(as_text=True)
    with app.app_context():
        assert get_state(app).sessions.list_for(user) == []
    assert len(events(app, Event.SIGN_IN)) == sign_ins
    # The challenge is no bearer token.
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {body['challenge']}"})
    assert me.status_code == 401


def test_api_second_step_returns_the_token_pair(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    challenge = api_challenge(client)
    response = api_step(client, challenge, code_for(enrolled.secret, clock))
    assert response.status_code == 200, response.get_data(as_text=True)
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["username"] == "ada"
    assert events(app, Event.SIGN_IN)[-1] == (user, {"via": "api", "factor": "totp"})
    # The code is used up, here as on the pages.
    assert (
        api_step(client, api_challenge(client), code_for(enrolled.secret, clock)).status_code == 401
    )


def test_api_accepts_a_recovery_code_once(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    code = enrolled.recovery_codes[0].upper()
    assert api_step(client, api_challenge(client), code).status_code == 200
    assert events(app, Event.RECOVERY_CODE_USED) == [(user, {"via": "api"})]
    assert events(app, Event.SIGN_IN)[-1] == (user, {"via": "api", "factor": "recovery"})
    assert_problem(api_step(client, api_challenge(client), code), 401, "invalid_code")


def test_codes_in_other_digits_are_wrong_codes_not_errors(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    arabic = code_for(enrolled.secret, clock).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    password_step(client)
    assert second_step(client, arabic).status_code == 422
    assert_problem(api_step(client, api_challenge(client), arabic), 401, "invalid_code")
    assert not signed_in(client)


def test_api_wrong_code_is_a_401_problem(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    challenge = api_challenge(client)
    response = api_step(client, challenge, wrong_code(enrolled.secret, clock))
    assert_problem(response, 401, "invalid_code")
    assert "access_token" not in response.get_data(as_text=True)
    assert events(app, Event.SIGN_IN_FAILED)[-1] == (
        user,
        {"reason": "second-factor", "via": "api"},
    )
    # The challenge survives a wrong code (within its five minutes).
    assert api_step(client, challenge, code_for(enrolled.secret, clock)).status_code == 200


def test_api_challenge_is_used_up_by_its_sign_in(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    challenge = api_challenge(client)
    clock.advance(seconds=5)  # the person types the code
    assert api_step(client, challenge, code_for(enrolled.secret, clock)).status_code == 200
    clock.advance(seconds=STEP)  # a fresh code, within the challenge's five minutes
    assert_problem(
        api_step(client, challenge, code_for(enrolled.secret, clock)), 400, "token_invalid"
    )


def test_api_challenge_lasts_five_minutes(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    challenge = api_challenge(client)
    clock.advance(seconds=WINDOW - 10)
    assert api_step(client, challenge, code_for(enrolled.secret, clock)).status_code == 200


def test_api_expired_challenge_is_refused(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    challenge = api_challenge(client)
    clock.advance(seconds=WINDOW + 1)
    response = api_step(client, challenge, code_for(enrolled.secret, clock))
    assert response.status_code == 400
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] in ("token_expired", "token_invalid")


def test_api_tampered_challenge_is_refused(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    challenge = api_challenge(client)
    code = code_for(enrolled.secret, clock)
    cut = len(challenge) // 3  # inside the signed payload
    tampered = challenge[:cut] + ("A" if challenge[cut] != "A" else "B") + challenge[cut + 1 :]
    for forged in (tampered, challenge + "x", "not-a-challenge"):
        assert_problem(api_step(client, forged, code), 400, "token_invalid")
    assert api_step(client, challenge, code).status_code == 200  # the code was not used up


def test_api_challenge_of_another_purpose_is_refused(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    ada = get_user(app, user)
    assert ada is not None
    with app.app_context():
        link = get_state(app).links.verification_token(ada)
    code = code_for(enrolled.secret, clock)
    assert_problem(api_step(client, link, code), 400, "token_invalid")


def test_api_challenge_dies_with_a_password_change(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    challenge = api_challenge(client)
    with app.app_context():
        state = get_state(app)
        ada = state.accounts.get(user)
        assert ada is not None
        state.accounts.set_password(ada, NEW_PASSWORD)
    response = api_step(client, challenge, code_for(enrolled.secret, clock))
    assert_problem(response, 400, "token_invalid")
    fresh = api_login(client, NEW_PASSWORD)
    assert fresh.status_code == 202
    step = api_step(client, fresh.get_json()["challenge"], code_for(enrolled.secret, clock))
    assert step.status_code == 200


def test_the_pending_second_step_dies_with_a_password_change(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled, user: int
) -> None:
    password_step(client)
    token = csrf_token(client, SECOND_STEP)
    with app.app_context():
        state = get_state(app)
        ada = state.accounts.get(user)
        assert ada is not None
        state.accounts.set_password(ada, NEW_PASSWORD)
    code = code_for(enrolled.secret, clock)
    response = client.post(SECOND_STEP, data={"csrf_token": token, "code": code})
    assert path_of(response) == "/login"
    assert not signed_in(client)
