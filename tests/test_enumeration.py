"""No user enumeration: sign-in, password recovery, resending the confirmation link and
sign-up (with verification required) answer the same status and page whether or not an
account exists, and take the same time within a generous factor.

Pages are compared after removing what differs for any two requests anyway: CSRF tokens
and the values echoed back into form fields (or the address echoed on "check your inbox").
Mails go to the real SMTP server of the suite (``outbox``).

The timing tests use the real argon2 parameters (not the suite's cheap FAST_HASH), since
the hash is what an unknown account must not skip. They interleave a few tries of each
kind, compare medians, report the ratio (``record_property("timing_ratio", ...)`` in the
JUnit XML, and printed) and assert a factor below 2.
"""

from __future__ import annotations

import html
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.identity import mask_email
from flask_portcullis.notify import SUBJECTS
from flask_portcullis.web.auth import BAD_CREDENTIALS

from .conftest import (
    PASSWORD,
    REAL_HASH,
    AppFactory,
    Outbox,
    csrf_token,
    make_user,
    submit,
    text,
    without_challenges,
)
from .rows import count

# The suite's make_app already relaxes the sign-in and sign-up limits; relax mail too, so no
# throttle changes what a request does while these tests repeat them from one client.
GENEROUS_MAIL: dict[str, Any] = {
    "PORTCULLIS_MAIL_LIMIT_PER_CLIENT": "100000/hour",
    "PORTCULLIS_MAIL_LIMIT_PER_ADDRESS": "100000/hour",
}
REQUIRED: dict[str, Any] = {"PORTCULLIS_EMAIL_VERIFICATION": "required"}
WRONG_PASSWORD = "not the right password at all"
NEW_PASSWORD = "a fresh passphrase for a new account"
TIMING_PAIRS = 8  # each try costs an argon2 hash: a few are enough to see a skipped one
# Password recovery costs a few milliseconds either way, where machine noise weighs more:
# more tries (still well under a second).
CHEAP_TIMING_PAIRS = 25
MAX_RATIO = 2.0
VALUE = re.compile(r'\svalue="[^"]*"')
STRONG = re.compile(r"<strong>(.*?)</strong>", re.S)


# -- helpers ------------------------------------------------------------------------------------


def comparable(response: TestResponse, *echoed: str) -> str:
    """The page without its CSRF tokens and field values, each echoed string made ``<echo>``."""
    body = VALUE.sub(' value=""', without_challenges(text(response)))
    for value in sorted(echoed, key=len, reverse=True):
        body = body.replace(html.escape(value), "<echo>").replace(value, "<echo>")
    return body


def session_keys(client: FlaskClient) -> set[str]:
    """What the visitor's own (signed, not encrypted) session cookie says about them."""
    with client.session_transaction() as session:
        return set(session)


def assert_same_answer(
    first: TestResponse, second: TestResponse, echoed: tuple[str, ...] = ()
) -> None:
    assert first.status_code == second.status_code, (first.status_code, second.status_code)
    assert first.headers.get("Location") == second.headers.get("Location")
    assert first.mimetype == second.mimetype
    assert comparable(first, *echoed) == comparable(second, *echoed)


def post(client: FlaskClient, path: str, data: dict[str, str]) -> tuple[float, TestResponse]:
    """Fetch the form, then time only its POST."""
    token = csrf_token(client, path)
    start = time.perf_counter()
    response = client.post(path, data={"csrf_token": token, **data})
    return time.perf_counter() - start, response


def login_data(identity: str) -> dict[str, str]:
    return {"identity": identity, "password": WRONG_PASSWORD}


def register_data(username: str, email: str) -> dict[str, str]:
    return {
        "username": username,
        "email": email,
        "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD,
    }


def compare_timing(
    known: Callable[[int], float],
    unknown: Callable[[int], float],
    record_property: Callable[[str, object], None],
    what: str,
    pairs: int = TIMING_PAIRS,
) -> float:
    """Interleave tries of each kind (after one warm-up each), compare medians, report."""
    known(-1)
    unknown(-1)
    known_times: list[float] = []
    unknown_times: list[float] = []
    for attempt in range(pairs):
        # Alternate which goes first, so neither kind always follows the other.
        if attempt % 2:
            unknown_times.append(unknown(attempt))
            known_times.append(known(attempt))
        else:
            known_times.append(known(attempt))
            unknown_times.append(unknown(attempt))
    known_median = statistics.median(known_times)
    unknown_median = statistics.median(unknown_times)
    ratio = max(known_median, unknown_median) / min(known_median, unknown_median)
    record_property("timing_ratio", round(ratio, 3))
    record_property("timing_known_median_ms", round(known_median * 1000, 2))
    record_property("timing_unknown_median_ms", round(unknown_median * 1000, 2))
    print(
        f"\n{what}: known {known_median * 1000:.1f} ms, unknown {unknown_median * 1000:.1f} ms "
        f"(medians of {pairs}), ratio {ratio:.3f}"
    )
    return ratio


# -- sign-in ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["active", "unverified", "deactivated"])
@pytest.mark.parametrize("typed", ["username", "email"])
def test_login_unknown_identity_and_wrong_password_answer_alike(
    make_demo_app: AppFactory, state: str, typed: str
) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    user_id = make_user(app, verified=state != "unverified")
    if state == "deactivated":
        with app.app_context():
            accounts = get_state(app).accounts
            user = accounts.get(user_id)
            assert user is not None
            accounts.set_active(user, False)
    known_identity, unknown_identity = (
        ("ada", "nobody") if typed == "username" else ("ada@example.com", "nobody@example.com")
    )

    known_client, unknown_client = app.test_client(), app.test_client()
    _, known = post(known_client, "/login", login_data(known_identity))
    _, unknown = post(unknown_client, "/login", login_data(unknown_identity))

    assert known.status_code == 422, text(known)[:500]
    assert BAD_CREDENTIALS in text(known)
    assert_same_answer(known, unknown, (known_identity, unknown_identity))
    assert session_keys(known_client) == session_keys(unknown_client)


def test_login_timing_known_wrong_password_vs_unknown(
    make_demo_app: AppFactory, record_property: Callable[[str, object], None]
) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REAL_HASH)
    make_user(app)
    client = app.test_client()

    def known(attempt: int) -> float:
        elapsed, response = post(client, "/login", login_data("ada"))
        assert response.status_code == 422
        return elapsed

    def unknown(attempt: int) -> float:
        elapsed, response = post(client, "/login", login_data(f"nobody{attempt + 1}"))
        assert response.status_code == 422
        return elapsed

    ratio = compare_timing(known, unknown, record_property, "sign-in")
    assert ratio < MAX_RATIO


# -- password recovery ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["active", "unverified", "deactivated"])
def test_forgot_password_known_and_unknown_address_answer_alike(
    make_demo_app: AppFactory, outbox: Outbox, state: str
) -> None:
    app = make_demo_app(**GENEROUS_MAIL)
    user_id = make_user(app, verified=state != "unverified")
    if state == "deactivated":
        with app.app_context():
            accounts = get_state(app).accounts
            user = accounts.get(user_id)
            assert user is not None
            accounts.set_active(user, False)

    unknown_client, known_client = app.test_client(), app.test_client()
    _, unknown = post(unknown_client, "/forgot-password", {"email": "nobody@example.com"})
    _, known = post(known_client, "/forgot-password", {"email": "ada@example.com"})

    assert known.status_code == 200, text(known)[:500]
    assert "Check your inbox" in text(known)
    assert_same_answer(known, unknown, ("ada@example.com", "nobody@example.com"))
    assert session_keys(known_client) == session_keys(unknown_client)

    # Mail goes out in order on one worker: once ada's has arrived, any other would have too.
    with app.app_context():
        get_state(app).notifier.shutdown()
    if state == "deactivated":
        assert outbox.to("ada@example.com") == []
    else:
        [mail] = outbox.wait_for("ada@example.com")
        assert mail.subject.startswith(SUBJECTS["reset_password"])
    assert outbox.to("nobody@example.com") == []


def test_forgot_password_timing_known_vs_unknown(
    make_demo_app: AppFactory, outbox: Outbox, record_property: Callable[[str, object], None]
) -> None:
    app = make_demo_app(**GENEROUS_MAIL)
    make_user(app)
    client = app.test_client()

    def known(attempt: int) -> float:
        elapsed, response = post(client, "/forgot-password", {"email": "ada@example.com"})
        assert response.status_code == 200
        # Let the background delivery finish untimed: it is not the next request's cost.
        outbox.wait_for("ada@example.com", attempt + 2)
        return elapsed

    def unknown(attempt: int) -> float:
        address = f"nobody{attempt + 1}@example.com"
        elapsed, response = post(client, "/forgot-password", {"email": address})
        assert response.status_code == 200
        return elapsed

    ratio = compare_timing(
        known, unknown, record_property, "forgot-password", pairs=CHEAP_TIMING_PAIRS
    )
    assert ratio < MAX_RATIO
    outbox.wait_for("ada@example.com", CHEAP_TIMING_PAIRS + 1)


# -- sign-up with a taken address (verification required) ---------------------------------------


def test_taken_address_answers_like_a_new_one_and_tells_the_owner(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    owner_id = make_user(app, verified=True)
    before = count(app, "users")

    fresh_client, taken_client = app.test_client(), app.test_client()
    _, fresh = post(fresh_client, "/register", register_data("newbie", "newbie@example.com"))
    _, taken = post(taken_client, "/register", register_data("intruder", "ada@example.com"))

    assert fresh.status_code == 200, text(fresh)[:500]
    assert "Check your inbox" in text(fresh)
    assert_same_answer(fresh, taken, ("newbie@example.com", "ada@example.com"))
    for word in ("ada", "already", "taken", "exists", "cannot be used"):
        assert word not in comparable(taken, "ada@example.com").lower(), word

    # One new account (the fresh one); the address still belongs to its owner alone.
    assert count(app, "users") == before + 1
    with app.app_context():
        accounts = get_state(app).accounts
        assert accounts.get_by_identity("intruder") is None
        owner = accounts.get_by_email("ada@example.com")
        assert owner is not None
        assert owner.id == owner_id

    [notice] = outbox.wait_for("ada@example.com")
    assert notice.subject.startswith("Someone tried to sign up with your address")
    assert "/forgot-password" in notice.text
    assert NEW_PASSWORD not in notice.text
    assert NEW_PASSWORD not in notice.html
    [confirmation] = outbox.wait_for("newbie@example.com")
    assert confirmation.subject.startswith(SUBJECTS["verify_email"])


def test_taken_address_in_another_case_creates_nothing(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    make_user(app, verified=True)
    before = count(app, "users")
    client = app.test_client()
    response = submit(client, "/register", register_data("intruder", "ADA@example.com"))
    assert response.status_code == 200
    assert "Check your inbox" in text(response)
    assert count(app, "users") == before
    outbox.wait_for("ada@example.com")


def test_registration_timing_taken_vs_fresh_address(
    make_demo_app: AppFactory, outbox: Outbox, record_property: Callable[[str, object], None]
) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED, **REAL_HASH)
    make_user(app, verified=True)

    def taken(attempt: int) -> float:
        data = register_data(f"taken{attempt + 1}", "ada@example.com")
        elapsed, response = post(app.test_client(), "/register", data)
        assert response.status_code == 200
        return elapsed

    def fresh(attempt: int) -> float:
        data = register_data(f"fresh{attempt + 1}", f"fresh{attempt + 1}@example.com")
        elapsed, response = post(app.test_client(), "/register", data)
        assert response.status_code == 200
        return elapsed

    ratio = compare_timing(taken, fresh, record_property, "sign-up (taken vs fresh address)")
    assert ratio < MAX_RATIO
    assert len(outbox.wait_for("ada@example.com", TIMING_PAIRS + 1)) == TIMING_PAIRS + 1


def test_taken_address_page_echoes_the_address_like_a_new_one(make_demo_app: AppFactory) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    make_user(app, verified=True)
    _, fresh = post(app.test_client(), "/register", register_data("newbie", "Newbie@EXAMPLE.com"))
    _, taken = post(app.test_client(), "/register", register_data("intruder", "Ada@EXAMPLE.com"))
    assert fresh.status_code == taken.status_code == 200
    shown = STRONG.findall(text(fresh)), STRONG.findall(text(taken))
    # The same transformation of what was typed, whatever it is.
    assert shown == (["Newbie@EXAMPLE.com"], ["Ada@EXAMPLE.com"]) or shown == (
        ["Newbie@example.com"],
        ["Ada@example.com"],
    ), shown


def test_taken_address_leaves_the_same_session_as_a_new_one(make_demo_app: AppFactory) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    make_user(app, verified=True)
    fresh_client, taken_client = app.test_client(), app.test_client()
    post(fresh_client, "/register", register_data("newbie", "newbie@example.com"))
    post(taken_client, "/register", register_data("intruder", "ada@example.com"))
    assert session_keys(fresh_client) == session_keys(taken_client)


# -- resending the confirmation link ------------------------------------------------------------


def resend(client: FlaskClient, page: TestResponse) -> TestResponse:
    """Press "Send the link again" on a check-your-inbox page, and follow where it leads."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', text(page))
    assert match, text(page)[:500]
    return client.post("/verify-email", data={"csrf_token": match.group(1)}, follow_redirects=True)


def test_resend_after_a_wrong_password_answers_like_an_unknown_account(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    """A wrong password for an unverified account sets nothing a resend could use: the
    resend then answers as for a name that has no account, and mails nobody."""
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    make_user(app)
    known_client, unknown_client = app.test_client(), app.test_client()
    _, known_page = post(known_client, "/login", login_data("ada"))
    _, unknown_page = post(unknown_client, "/login", login_data("nobody"))
    assert_same_answer(known_page, unknown_page, ("ada", "nobody"))
    known = resend(known_client, known_page)
    unknown = resend(unknown_client, unknown_page)
    assert known.status_code == 200
    assert_same_answer(known, unknown)
    with app.app_context():
        get_state(app).notifier.shutdown()
    assert outbox.to("ada@example.com") == []


def test_resend_after_a_refused_sign_in_mails_the_unverified_owner(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    """Resending needs the password first (sign-in refused for an unverified address), so it
    tells nothing to someone who does not already hold the account."""
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    make_user(app)
    client = app.test_client()
    _, refused = post(client, "/login", {"identity": "ada", "password": PASSWORD})
    assert refused.status_code == 422
    answer = resend(client, refused)
    assert answer.status_code == 200
    assert mask_email("ada@example.com") in text(answer)
    [mail] = outbox.wait_for("ada@example.com")
    assert mail.subject.startswith(SUBJECTS["verify_email"])


def test_resend_after_sign_up_answers_alike_for_a_taken_address(
    make_demo_app: AppFactory, outbox: Outbox
) -> None:
    app = make_demo_app(**GENEROUS_MAIL, **REQUIRED)
    make_user(app, verified=True)
    fresh_client, taken_client = app.test_client(), app.test_client()
    _, fresh_page = post(fresh_client, "/register", register_data("newbie", "newbie@example.com"))
    _, taken_page = post(taken_client, "/register", register_data("intruder", "ada@example.com"))
    fresh = resend(fresh_client, fresh_page)
    taken = resend(taken_client, taken_page)
    echoed = (mask_email("newbie@example.com"), mask_email("ada@example.com"))
    assert_same_answer(fresh, taken, echoed)
