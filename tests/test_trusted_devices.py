"""Trusted devices (OWASP device cookies): a browser or API client that signed in to an
account before keeps signing in while others' failures delay or lock the account; unknown
clients are held exactly as before. Through the pages and the API, on in-process and Redis
limits.

Every app here runs the shipped limits (``REAL_LIMITS``); the lock tests allow 99 free
failures, as ``test_login_limits`` does, so that the 100-failure lock is reached without
waiting out the growing delays in between.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import Signer
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.devices import SALT
from flask_portcullis.exceptions import PasswordRejected
from flask_portcullis.throttling import FAILURE_MEMORY
from flask_portcullis.web.auth import BAD_CREDENTIALS
from flask_portcullis.web.keys import DEVICE_COOKIE

from .conftest import (
    PASSWORD,
    REDIS_URL,
    FakeClock,
    LimitedAppFactory,
    login,
    make_user,
    path_of,
    reset_by_link,
    submit,
    text,
)
from .rows import events
from .totp import STEP, code_for
from .two_factor_steps import SECOND_STEP, enroll

NEW_PASSWORD = "a brand new passphrase for ada"
API = "/api/v1"
OWNER_IP = "198.51.100.7"
OWNER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
# Isolates the 100-failure lock from the growing delays (see the module docstring).
LOCK_ONLY: dict[str, Any] = {"PORTCULLIS_LOGIN_FREE_FAILURES": 99}
DEVICE_ROW = re.compile(r'<tr class="trusted-device">(.*?)</tr>', re.S)
DEVICE_FIELD = re.compile(r'name="device" value="([0-9a-f]{64})"')


def browser(app: Flask, ip: str = OWNER_IP, agent: str = OWNER_AGENT) -> FlaskClient:
    """A new browser (no cookies) at ``ip``."""
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    return client


def assert_signed_in(response: TestResponse) -> None:
    assert response.status_code == 302, text(response)[:300]
    assert "/login" not in response.headers["Location"]


def assert_bad_credentials(response: TestResponse) -> None:
    assert response.status_code == 422, text(response)[:300]
    assert BAD_CREDENTIALS in text(response)


def assert_throttled(response: TestResponse) -> int:
    assert response.status_code == 429, text(response)[:300]
    return int(response.headers["Retry-After"])


def sign_out(client: FlaskClient) -> None:
    assert submit(client, "/logout", {}).status_code == 302


def signed_in_once(app: Flask, identity: str = "ada") -> FlaskClient:
    """The owner's browser: it signed in once (and so holds a device cookie), then out."""
    client = browser(app)
    assert_signed_in(login(client, identity))
    assert client.get_cookie(DEVICE_COOKIE) is not None
    sign_out(client)
    return client


def wrong_passwords_from_elsewhere(app: Flask, count: int, identity: str = "ada") -> None:
    """``count`` wrong passwords for ``identity``, each from a new browser at a new address."""
    for number in range(count):
        client = browser(app, f"10.{number // 250}.{number % 250}.1", "attack-tool/1.0")
        response = login(client, identity, "wrong password")
        assert response.status_code in (422, 429), response.status_code


def shared_failures(app: Flask, user_id: int) -> int:
    with app.app_context():
        return get_state(app).authenticator.guard.failures(f"user:{user_id}")


def device_ids(app: Flask, user_id: int) -> list[str]:
    with app.app_context():
        return [device.id for device in get_state(app).devices.list_for(user_id)]


# -- the acceptance: others' failures neither delay nor lock a browser that signed in -------


def test_a_hundred_failures_from_elsewhere_lock_out_strangers_but_not_the_owner(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(**LOCK_ONLY)
    user_id = make_user(app)
    owner = signed_in_once(app)

    wrong_passwords_from_elsewhere(app, 100)
    stranger = browser(app, "192.0.2.200")  # a new browser, the right password: held as today
    assert assert_throttled(login(stranger, "ada", PASSWORD)) > FAILURE_MEMORY - 60

    assert_signed_in(login(owner, "ada", PASSWORD))  # the owner's browser: at once
    # Its success did not lift the lock for anybody else: the attacker stays locked out.
    assert shared_failures(app, user_id) >= 100
    assert assert_throttled(login(browser(app, "192.0.2.201"), "ada", PASSWORD)) > 86400


def test_the_growing_delays_hold_strangers_but_not_the_owner(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app()  # exactly the shipped limits: 5 free failures, then growing delays
    make_user(app)
    owner = signed_in_once(app)

    wrong_passwords_from_elsewhere(app, 6)
    assert_throttled(login(browser(app, "192.0.2.202"), "ada", PASSWORD))
    assert_signed_in(login(owner, "ada", PASSWORD))


def test_failures_from_the_trusted_browser_use_its_own_budget(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app()  # 10 attempts per device per 15 minutes; 5 free failures per account
    user_id = make_user(app)
    owner = signed_in_once(app)

    for _ in range(10):  # past the account's 5 free failures, and never delayed
        assert_bad_credentials(login(owner, "ada", "wrong password"))
    assert shared_failures(app, user_id) == 0  # they did not feed the account's counter

    retry_after = assert_throttled(login(owner, "ada", PASSWORD))  # its budget is spent
    assert 1 <= retry_after <= 15 * 60
    # Nobody else is held by the device's failures: the account is not delayed.
    assert_signed_in(login(browser(app, "192.0.2.203"), "ada", PASSWORD))


def test_the_per_client_limit_still_applies_to_a_trusted_browser(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(PORTCULLIS_LOGIN_LIMIT_PER_CLIENT="3/minute")
    make_user(app)
    owner = signed_in_once(app)  # one attempt from OWNER_IP
    for number in range(2):  # two more from the same address, on other names
        assert_bad_credentials(login(browser(app), f"nobody{number}", "wrong password"))
    assert_throttled(login(owner, "ada", PASSWORD))


# -- what does not make a device trusted ---------------------------------------------------


def test_a_cookie_for_one_account_gives_nothing_for_another(limited_app: LimitedAppFactory) -> None:
    app = limited_app(**LOCK_ONLY)
    make_user(app)
    make_user(app, "grace", "grace@example.com")
    client = signed_in_once(app, "grace")

    wrong_passwords_from_elsewhere(app, 100, "ada")
    assert_throttled(login(client, "ada", PASSWORD))
    assert_signed_in(login(client, "grace", PASSWORD))


def test_one_browser_is_trusted_by_each_account_it_signed_in_to(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(**LOCK_ONLY)
    make_user(app)
    make_user(app, "grace", "grace@example.com")
    client = signed_in_once(app, "ada")
    assert_signed_in(login(client, "grace"))
    sign_out(client)
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None
    assert len(cookie.value.split("~")) == 2

    wrong_passwords_from_elsewhere(app, 100, "ada")
    wrong_passwords_from_elsewhere(app, 100, "grace")
    for identity in ("ada", "grace"):
        assert_signed_in(login(client, identity, PASSWORD))
        sign_out(client)


@pytest.mark.parametrize("change", ["signature", "account", "other-key", "garbage"])
def test_a_tampered_or_forged_cookie_is_ignored(
    limited_app: LimitedAppFactory, change: str
) -> None:
    app = limited_app(**LOCK_ONLY)
    user_id = make_user(app)
    make_user(app, "grace", "grace@example.com")
    owner = signed_in_once(app)
    cookie = owner.get_cookie(DEVICE_COOKIE)
    assert cookie is not None
    real = cookie.value
    user_part, nonce, signature = real.split(".")
    assert user_part == str(user_id)
    forged = {
        "signature": f"{user_part}.{nonce}.{signature[::-1]}",
        # Another account's id on this device's nonce, with the original signature.
        "account": f"{user_id + 1}.{nonce}.{signature}",
        "other-key": Signer("not-the-app-secret-key", salt=SALT).sign(f"{user_id}.x").decode(),
        "garbage": "~~.." + "A" * 300,
    }[change]

    wrong_passwords_from_elsewhere(app, 100)
    attacker = browser(app, "192.0.2.210")
    attacker.set_cookie(DEVICE_COOKIE, forged)
    assert_throttled(login(attacker, "ada", PASSWORD))
    assert_signed_in(login(owner, "ada", PASSWORD))  # the real one still works


def test_a_device_removed_on_the_sessions_page_waits_like_a_stranger(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(**LOCK_ONLY)
    user_id = make_user(app)
    client = browser(app)
    assert_signed_in(login(client, "ada"))
    [row] = DEVICE_ROW.findall(text(client.get("/account/sessions")))
    assert "this browser" in row
    [device_id] = DEVICE_FIELD.findall(row)

    response = submit(client, "/account/sessions", {"device": device_id})
    assert response.status_code == 302
    assert "no longer trusted" in text(client.get("/account/sessions"))
    assert device_ids(app, user_id) == []
    assert events(app, Event.DEVICE_REVOKED)[-1] == (user_id, {"count": 1, "scope": "one"})
    sign_out(client)

    wrong_passwords_from_elsewhere(app, 100)
    assert_throttled(login(client, "ada", PASSWORD))


def test_a_device_of_another_user_cannot_be_removed(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    make_user(app)
    grace = make_user(app, "grace", "grace@example.com")
    signed_in_once(app, "grace")
    [grace_device] = device_ids(app, grace)
    client = browser(app, "192.0.2.211")
    assert_signed_in(login(client, "ada"))
    submit(client, "/account/sessions", {"device": grace_device})
    assert device_ids(app, grace) == [grace_device]


def test_signing_out_every_other_device_forgets_them_but_keeps_this_browser(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(**LOCK_ONLY)
    user_id = make_user(app)
    laptop = browser(app)
    assert_signed_in(login(laptop, "ada"))
    phone = browser(app, "198.51.100.8", "Mozilla/5.0 (iPhone) Safari/604.1")
    assert_signed_in(login(phone, "ada"))
    assert len(device_ids(app, user_id)) == 2

    assert submit(laptop, "/account/sessions", {"session": "others"}).status_code == 302
    [kept] = device_ids(app, user_id)
    assert "this browser" in DEVICE_ROW.findall(text(laptop.get("/account/sessions")))[0]
    sign_out(laptop)

    wrong_passwords_from_elsewhere(app, 100)
    assert_throttled(login(phone, "ada", PASSWORD))
    assert_signed_in(login(laptop, "ada", PASSWORD))
    assert device_ids(app, user_id) == [kept]


def test_a_password_reset_by_email_forgets_every_device(limited_app: LimitedAppFactory) -> None:
    app = limited_app(**LOCK_ONLY)
    user_id = make_user(app)
    owner = signed_in_once(app)
    assert len(device_ids(app, user_id)) == 1

    reset_by_link(app, user_id, NEW_PASSWORD)
    assert device_ids(app, user_id) == []
    wrong_passwords_from_elsewhere(app, 100)
    assert_throttled(login(owner, "ada", NEW_PASSWORD))


def test_a_rejected_new_password_forgets_no_device(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    user_id = make_user(app)
    signed_in_once(app)
    with pytest.raises(PasswordRejected):
        reset_by_link(app, user_id, "short")
    assert len(device_ids(app, user_id)) == 1


# -- the cookie and the list ------------------------------------------------------------------


def test_the_device_cookie_is_http_only_lax_secure_and_lasts_a_year(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app()
    make_user(app)
    response = login(browser(app), "ada")
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(DEVICE_COOKIE)]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Lax" in header
    assert "Path=/" in header
    assert "Max-Age=31536000" in header


def test_signing_in_again_keeps_one_device_and_its_token(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    user_id = make_user(app)
    client = signed_in_once(app)
    first = client.get_cookie(DEVICE_COOKIE)
    assert first is not None
    assert_signed_in(login(client, "ada"))
    second = client.get_cookie(DEVICE_COOKIE)
    assert second is not None
    assert second.value == first.value
    assert len(device_ids(app, user_id)) == 1


def test_the_cookie_holds_five_accounts_at_most(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    names = [f"user{number}" for number in range(6)]
    for name in names:
        make_user(app, name, f"{name}@example.com")
    client = browser(app)
    for name in names:
        assert_signed_in(login(client, name))
        sign_out(client)
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None
    tokens = cookie.value.split("~")
    assert len(tokens) == 5
    with app.app_context():
        devices = get_state(app).devices
        owners = [devices.user_id_of(token) for token in tokens]
        ids = [get_state(app).accounts.require_by_identity(n).id for n in reversed(names)]
    assert owners == ids[:5]  # most recent first; the oldest account dropped out


def test_the_sessions_page_lists_browsers_and_api_clients(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    make_user(app)
    api = browser(app, "198.51.100.9", "ada-cli/2.0")
    assert (
        api.post(f"{API}/login", json={"identity": "ada", "password": PASSWORD}).status_code == 200
    )
    client = browser(app)
    assert_signed_in(login(client, "ada"))
    rows = DEVICE_ROW.findall(text(client.get("/account/sessions")))
    assert len(rows) == 2
    browser_row = next(r for r in rows if "this browser" in r)
    api_row = next(r for r in rows if "ada-cli/2.0" in r)
    assert "Browser" in browser_row
    assert OWNER_AGENT in browser_row
    assert OWNER_IP in browser_row
    assert "API client" in api_row
    assert "198.51.100.9" in api_row
    assert "<time" in api_row


def test_the_export_lists_trusted_devices_without_their_ids(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    user_id = make_user(app)
    client = browser(app)
    assert_signed_in(login(client, "ada"))
    export = client.get("/account/export")
    [device] = export.get_json()["trusted_devices"]
    assert device["kind"] == "browser"
    assert device["ip"] == OWNER_IP
    assert device["user_agent"] == OWNER_AGENT
    [stored] = device_ids(app, user_id)
    assert stored not in text(export)


# -- the API ------------------------------------------------------------------------------------


def api_login(
    app: Flask, identity: str, password: str, device_token: str | None = None, ip: str = OWNER_IP
) -> TestResponse:
    body: dict[str, Any] = {"identity": identity, "password": password}
    if device_token is not None:
        body["device_token"] = device_token
    return browser(app, ip, "ada-cli/2.0").post(f"{API}/login", json=body)


def test_api_login_returns_a_device_token_that_outlasts_a_lock(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(**LOCK_ONLY)
    make_user(app)
    make_user(app, "grace", "grace@example.com")
    first = api_login(app, "ada", PASSWORD)
    assert first.status_code == 200
    token = first.get_json()["device_token"]
    assert token
    assert first.get_json()["refresh_token"]
    grace_token = api_login(app, "grace", PASSWORD).get_json()["device_token"]

    wrong_passwords_from_elsewhere(app, 100)
    assert api_login(app, "ada", PASSWORD, ip="192.0.2.220").status_code == 429
    assert api_login(app, "ada", PASSWORD, grace_token, ip="192.0.2.221").status_code == 429
    again = api_login(app, "ada", PASSWORD, token)
    assert again.status_code == 200
    assert again.get_json()["device_token"] == token  # the same device, refreshed


def test_api_device_failures_do_not_feed_the_account_counter(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app()
    user_id = make_user(app)
    token = api_login(app, "ada", PASSWORD).get_json()["device_token"]
    for _ in range(10):
        assert api_login(app, "ada", "wrong password", token).status_code == 401
    assert shared_failures(app, user_id) == 0
    refused = api_login(app, "ada", PASSWORD, token)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"


def test_api_logout_everywhere_forgets_every_device(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    user_id = make_user(app)
    signed_in_once(app)
    pair = api_login(app, "ada", PASSWORD).get_json()
    assert len(device_ids(app, user_id)) == 2
    client = browser(app)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.post(f"{API}/logout-everywhere", headers=headers).status_code == 204
    assert device_ids(app, user_id) == []


# -- Redis ----------------------------------------------------------------------------------


@pytest.mark.services
def test_the_acceptance_holds_with_limits_in_redis(
    limited_app: LimitedAppFactory, redis_prefix: str
) -> None:
    app = limited_app(
        PORTCULLIS_REDIS_URL=REDIS_URL, PORTCULLIS_REDIS_PREFIX=redis_prefix, **LOCK_ONLY
    )
    user_id = make_user(app)
    owner = signed_in_once(app)
    token = api_login(app, "ada", PASSWORD, ip="198.51.100.99").get_json()["device_token"]

    wrong_passwords_from_elsewhere(app, 100)
    assert shared_failures(app, user_id) >= 100
    assert assert_throttled(login(browser(app, "192.0.2.230"), "ada", PASSWORD)) > 86400
    assert api_login(app, "ada", PASSWORD, ip="192.0.2.231").status_code == 429
    assert_signed_in(login(owner, "ada", PASSWORD))
    assert api_login(app, "ada", PASSWORD, token, ip="198.51.100.99").status_code == 200


# -- with a second factor -------------------------------------------------------------------


def test_a_browser_is_trusted_only_once_its_second_factor_is_given(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    factor = enroll(auth_client, clock)
    clock.advance(seconds=4 * STEP)
    client = browser(app, "198.51.100.50")
    assert path_of(login(client, "ada")) == SECOND_STEP
    assert client.get_cookie(DEVICE_COOKIE) is None  # the password alone trusts nothing

    assert_signed_in(submit(client, SECOND_STEP, {"code": code_for(factor.secret, clock)}))
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None
    with app.app_context():
        assert get_state(app).devices.get(user, [cookie.value]) is not None
