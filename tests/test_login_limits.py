"""Sign-in and sign-up rate limits, through the pages: per client, per account and client,
growing per-account delays, the NIST cap of 100 consecutive failures, trusted proxies,
Redis sharing and Redis outages, and the off switch.

``make_app`` relaxes the sign-in limits for the rest of the suite; every app here passes the
real ones back (``REAL_LIMITS``, pinned against the defaults by the first test).
"""

from __future__ import annotations

import re
import time
import types
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.exceptions import InvalidCredentials, Throttled
from flask_portcullis.settings import Settings
from flask_portcullis.throttling import FAILURE_MEMORY, LoginGuard, Throttle
from flask_portcullis.web.auth import BAD_CREDENTIALS

from .conftest import (
    PASSWORD,
    REAL_LIMITS,
    REDIS_URL,
    LimitedAppFactory,
    free_port,
    login,
    make_user,
    reset_by_link,
    submit,
    text,
    without_challenges,
)

NEW_PASSWORD = "a brand new passphrase for ada"
PER_CLIENT = 30  # attempts a minute from one client
PER_ACCOUNT_CLIENT = 10  # attempts on one account from one client per 15 minutes
REGISTRATIONS = 10  # sign-ups from one client an hour
CSRF_VALUE = re.compile(r'name="csrf_token"[^>]*value="[^"]+"')


def browser(app: Flask, ip: str = "192.0.2.1", forwarded_for: str | None = None) -> FlaskClient:
    """A fresh client (no cookies) whose requests come from ``ip``, optionally through a proxy."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    if forwarded_for is not None:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def assert_bad_credentials(response: TestResponse) -> None:
    assert response.status_code == 422, text(response)[:300]
    assert BAD_CREDENTIALS in text(response)


def assert_signed_in(response: TestResponse) -> None:
    assert response.status_code == 302, text(response)[:300]
    assert "/login" not in response.headers["Location"]


def assert_throttled(response: TestResponse) -> int:
    """Check the friendly 429 page and return its Retry-After in seconds."""
    assert response.status_code == 429, text(response)[:300]
    assert "Too many attempts" in text(response)
    assert "Traceback" not in text(response)
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def register(client: FlaskClient, username: str) -> TestResponse:
    return submit(
        client,
        "/register",
        {
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )


def test_the_real_limits_are_the_defaults() -> None:
    defaults = Settings()
    assert defaults.login_limit_per_client == REAL_LIMITS["PORTCULLIS_LOGIN_LIMIT_PER_CLIENT"]
    assert (
        defaults.login_limit_per_account_client
        == REAL_LIMITS["PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT"]
    )
    assert defaults.login_free_failures == REAL_LIMITS["PORTCULLIS_LOGIN_FREE_FAILURES"]
    assert defaults.register_limit_per_client == REAL_LIMITS["PORTCULLIS_REGISTER_LIMIT_PER_CLIENT"]
    assert defaults.login_max_delay == 15 * 60
    assert defaults.rate_limit_fail_closed is True
    assert defaults.trusted_proxies == 0
    assert defaults.rate_limits is True


# -- per client ------------------------------------------------------------------------------


def test_per_client_limit_refuses_one_address_and_spares_the_others(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app()
    make_user(app)
    attacker = browser(app, "192.0.2.10")
    for number in range(PER_CLIENT):  # a different name each time: only the client limit counts
        assert_bad_credentials(login(attacker, f"nobody{number}", "wrong password"))

    refused = login(attacker, "somebody-else", "wrong password")
    assert 1 <= assert_throttled(refused) <= 60
    assert_throttled(login(browser(app, "192.0.2.10"), "ada", PASSWORD))  # right password too

    assert_signed_in(login(browser(app, "192.0.2.11"), "ada", PASSWORD))


# -- per account and client ------------------------------------------------------------------


def test_per_account_client_limit_spares_other_accounts_and_clients(
    limited_app: LimitedAppFactory,
) -> None:
    # No growing delays here, so only the per-account+client limit can refuse.
    app = limited_app(PORTCULLIS_LOGIN_FREE_FAILURES=99)
    make_user(app)
    make_user(app, "grace", "grace@example.com")
    attacker = browser(app, "192.0.2.20")
    for number in range(PER_ACCOUNT_CLIENT):
        identity = "ada" if number % 2 else "ADA@example.com"  # both name the same account
        assert_bad_credentials(login(attacker, identity, "wrong password"))

    assert_throttled(login(attacker, "ada", PASSWORD))
    assert_throttled(login(browser(app, "192.0.2.20"), "ada@example.com", PASSWORD))
    # Another account from the same address, and the same account from another, still work.
    assert_signed_in(login(browser(app, "192.0.2.20"), "grace", PASSWORD))
    assert_signed_in(login(browser(app, "192.0.2.21"), "ada", PASSWORD))


# -- growing delays per account --------------------------------------------------------------


def test_after_the_free_failures_even_the_right_password_waits(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(PORTCULLIS_LOGIN_FREE_FAILURES=2)
    make_user(app)
    client = browser(app, "192.0.2.30")
    for _ in range(3):  # two free failures, and a third that is checked and starts the lock
        assert_bad_credentials(login(client, "ada", "wrong password"))

    assert assert_throttled(login(client, "ada", PASSWORD)) == 2
    assert assert_throttled(login(client, "ada", PASSWORD)) == 2  # a refused try is no failure

    time.sleep(2.1)  # the one real wait: the 2-second lock runs out
    assert_bad_credentials(login(client, "ada", "wrong password"))
    assert assert_throttled(login(client, "ada", PASSWORD)) == 4  # twice as long as the last


def fake_wall_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A wall clock for the in-process storage and the guard (``limits`` uses time.time)."""
    now = [1_800_000_000.0]
    fake_time = types.SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr("limits.storage.memory.time", fake_time)
    monkeypatch.setattr("flask_portcullis.throttling.time", fake_time)
    return now


def make_guard(free_failures: int, max_delay: int) -> LoginGuard:
    return LoginGuard(
        Throttle(),
        per_client="1000/minute",
        per_account_client="1000/minute",
        registrations_per_client="1000/minute",
        free_failures=free_failures,
        max_delay=max_delay,
    )


def test_delays_double_up_to_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    now = fake_wall_clock(monkeypatch)
    guard = make_guard(free_failures=3, max_delay=20)
    waits: list[int | None] = []
    for _ in range(9):
        now[0] += 21  # past any earlier delay
        guard.before_attempt("user:1", "192.0.2.31")  # a password check that then fails
        waits.append(guard.retry_after("user:1") or None)
    assert waits == [None, None, None, 2, 4, 8, 16, 20, 20]
    assert guard.failures("user:1") == 9
    with pytest.raises(Throttled):
        guard.before_attempt("user:1", "192.0.2.31")  # still waiting: refused, not counted
    assert guard.failures("user:1") == 9
    guard.before_attempt("user:2", "192.0.2.31")  # other accounts are not locked


def test_parallel_guesses_get_one_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks are counted before the password is: a burst cannot slip through together."""
    fake_wall_clock(monkeypatch)
    guard = make_guard(free_failures=1, max_delay=60)
    allowed = 0
    for _ in range(15):  # fifteen requests in flight before any of them has finished
        try:
            guard.before_attempt("user:3", "192.0.2.32")
        except Throttled:
            continue
        allowed += 1
    assert allowed == 2  # the free one, and the one that took the slot


def test_the_lock_counts_per_account_whichever_identity_is_typed(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(PORTCULLIS_LOGIN_FREE_FAILURES=2)
    make_user(app)
    # Three failures under three spellings from three addresses: one account, one run.
    for number, identity in enumerate(("ada", "ADA@example.com", "Ada")):
        assert_bad_credentials(login(browser(app, f"192.0.2.4{number}"), identity, "wrong"))

    for identity in ("ada@example.com", "ada", "ADA"):
        assert assert_throttled(login(browser(app, "192.0.2.49"), identity, PASSWORD)) == 2


def test_unknown_identities_are_throttled_exactly_like_real_ones(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(PORTCULLIS_LOGIN_FREE_FAILURES=2)
    make_user(app)

    def attempts(identity: str, password: str, ip: str) -> list[tuple[int, str | None, str]]:
        seen = []
        for attempt in range(5):
            response = login(
                browser(app, ip), identity, password if attempt >= 3 else "wrong password"
            )
            body = CSRF_VALUE.sub("", without_challenges(text(response)))
            body = body.replace(identity, "IDENTITY")
            seen.append((response.status_code, response.headers.get("Retry-After"), body))
        return seen

    real = attempts("ada", PASSWORD, "192.0.2.50")
    unknown = attempts("nobody-at-all", PASSWORD, "192.0.2.51")
    assert [status for status, _, _ in real] == [422, 422, 422, 429, 429]
    assert real == unknown  # statuses, Retry-After and the pages themselves
    assert BAD_CREDENTIALS in real[0][2]


# -- NIST SP 800-63B: at most 100 consecutive failures ---------------------------------------


def test_a_hundred_failures_lock_until_the_password_is_reset(
    limited_app: LimitedAppFactory,
) -> None:
    # 99 free failures (and no client limits) isolate the cap from the growing delays.
    app = limited_app(
        PORTCULLIS_LOGIN_FREE_FAILURES=99,
        PORTCULLIS_LOGIN_LIMIT_PER_CLIENT="1000/minute",
        PORTCULLIS_LOGIN_LIMIT_PER_ACCOUNT_CLIENT="1000/minute",
    )
    user_id = make_user(app)
    with app.app_context():
        authenticator = get_state(app).authenticator
        for _ in range(99):
            with pytest.raises(InvalidCredentials):
                authenticator.authenticate("ada", "wrong password", client="192.0.2.60")
        # The 100th consecutive attempt is not even checked: the account is locked.
        with pytest.raises(Throttled) as caught:
            authenticator.authenticate("ada@example.com", PASSWORD, client="192.0.2.61")
        assert caught.value.retry_after >= FAILURE_MEMORY - 60  # locked, not slowed down

    # The owner cannot sign in from anywhere...
    assert assert_throttled(login(browser(app, "192.0.2.62"), "ada", PASSWORD)) > 29 * 86400

    # ...until a reset by email (which an attacker cannot do) lifts the lock at once.
    reset_by_link(app, user_id, NEW_PASSWORD)
    assert_signed_in(login(browser(app, "192.0.2.62"), "ada", NEW_PASSWORD))


def test_the_cap_holds_whatever_the_maximum_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    now = fake_wall_clock(monkeypatch)
    guard = make_guard(free_failures=5, max_delay=1)
    for _ in range(99):
        now[0] += 2
        guard.before_attempt("user:7", "192.0.2.63")
    assert guard.retry_after("user:7") == 1  # 99 failures: still only the (tiny) maximum delay

    now[0] += 2
    with pytest.raises(Throttled) as locked:
        guard.before_attempt("user:7", "192.0.2.63")  # the 100th is not even checked
    assert locked.value.retry_after >= FAILURE_MEMORY - 60
    assert guard.failures("user:7") == 100

    guard.succeeded("user:7")  # what a password reset does
    guard.before_attempt("user:7", "192.0.2.63")
    assert guard.failures("user:7") == 1


def test_the_cap_counts_a_run_for_thirty_days_from_its_first_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = fake_wall_clock(monkeypatch)
    guard = make_guard(free_failures=5, max_delay=60)
    guard.before_attempt("user:9", "192.0.2.64")  # day 0: the first failure
    now[0] += timedelta(days=29).total_seconds()
    for _ in range(98):  # day 29: failures 2 to 99, each after its delay ran out
        now[0] += 61
        guard.before_attempt("user:9", "192.0.2.64")
    now[0] += 61
    with pytest.raises(Throttled) as locked:
        guard.before_attempt("user:9", "192.0.2.64")
    assert locked.value.retry_after >= FAILURE_MEMORY - 60


def test_a_success_ends_the_run_of_failures(limited_app: LimitedAppFactory) -> None:
    app = limited_app(PORTCULLIS_LOGIN_FREE_FAILURES=3)
    make_user(app)
    for _ in range(2):  # 3 failures then a success, twice: 6 failures, never 4 in a row
        client = browser(app, "192.0.2.70")
        for _ in range(3):
            assert_bad_credentials(login(client, "ada", "wrong password"))
        assert_signed_in(login(client, "ada", PASSWORD))

    client = browser(app, "192.0.2.71")  # 192.0.2.70 has used 8 of its 10 tries on ada
    for _ in range(4):  # the 4th in a row does lock
        assert_bad_credentials(login(client, "ada", "wrong password"))
    assert_throttled(login(client, "ada", PASSWORD))


# -- sign-up per client ----------------------------------------------------------------------


def test_sign_ups_are_limited_per_client_but_not_from_the_cli(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app()
    for number in range(REGISTRATIONS):
        assert_signed_in(register(browser(app, "192.0.2.80"), f"web{number}"))

    refused = register(browser(app, "192.0.2.80"), "one-too-many")
    assert refused.status_code != 302
    assert "Too many attempts" in text(refused)
    assert_signed_in(register(browser(app, "192.0.2.81"), "elsewhere"))

    runner = app.test_cli_runner()
    for number in range(REGISTRATIONS + 2):
        result = runner.invoke(
            args=[
                "users",
                "create",
                "--username",
                f"cli{number}",
                "--email",
                f"cli{number}@example.com",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
        )
        assert result.exit_code == 0, result.output
    with app.app_context():
        accounts = get_state(app).accounts
        assert accounts.get_by_identity("one-too-many") is None
        assert accounts.get_by_identity("elsewhere") is not None
        assert len(accounts.search("cli", limit=100)) == REGISTRATIONS + 2


def test_a_throttled_sign_up_gets_the_429_page(limited_app: LimitedAppFactory) -> None:
    app = limited_app(PORTCULLIS_REGISTER_LIMIT_PER_CLIENT="1/hour")
    assert_signed_in(register(browser(app, "192.0.2.82"), "first"))
    refused = register(browser(app, "192.0.2.82"), "second")
    assert 3500 <= assert_throttled(refused) <= 3600


# -- the client's address behind proxies -----------------------------------------------------


def test_without_trusted_proxies_x_forwarded_for_is_ignored(limited_app: LimitedAppFactory) -> None:
    app = limited_app()
    user_id = make_user(app)
    for number in range(PER_CLIENT):  # a new spoofed address every time...
        spoofed = browser(app, "192.0.2.90", forwarded_for=f"203.0.113.{number}")
        assert_bad_credentials(login(spoofed, f"nobody{number}", "wrong password"))
    # ...does not escape the per-client limit.
    assert_throttled(login(browser(app, "192.0.2.90", forwarded_for="198.18.0.1"), "x", "wrong"))

    assert_signed_in(login(browser(app, "192.0.2.91", forwarded_for="198.18.0.2"), "ada", PASSWORD))
    with app.app_context():
        assert [s.ip for s in get_state(app).sessions.list_for(user_id)] == ["192.0.2.91"]


def test_behind_one_trusted_proxy_the_rightmost_forwarded_address_is_the_client(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(PORTCULLIS_TRUSTED_PROXIES=1)
    user_id = make_user(app)
    proxy = "10.0.0.1"
    for number in range(PER_CLIENT):  # whatever the client writes on the left is not trusted
        client = browser(app, proxy, forwarded_for=f"198.18.0.{number}, 203.0.113.7")
        assert_bad_credentials(login(client, f"nobody{number}", "wrong password"))
    assert_throttled(login(browser(app, proxy, forwarded_for="203.0.113.7"), "x", "wrong"))
    assert_throttled(login(browser(app, proxy, forwarded_for="1.1.1.1, 203.0.113.7"), "x", "y"))

    # Another forwarded address has its own count, though the proxy is the same peer.
    other = browser(app, proxy, forwarded_for="198.18.0.99, 203.0.113.8")
    assert_signed_in(login(other, "ada", PASSWORD))
    with app.app_context():
        assert [s.ip for s in get_state(app).sessions.list_for(user_id)] == ["203.0.113.8"]


# -- Redis: shared counts, hashed keys, outages ----------------------------------------------


@pytest.mark.services
def test_redis_shares_the_account_lock_between_app_instances(
    limited_app: LimitedAppFactory, redis_prefix: str
) -> None:
    config: dict[str, Any] = {
        "PORTCULLIS_REDIS_URL": REDIS_URL,
        "PORTCULLIS_REDIS_PREFIX": redis_prefix,
        "PORTCULLIS_LOGIN_FREE_FAILURES": 2,
    }
    worker_a, worker_b = (
        limited_app("shared", **config),
        limited_app("shared", **config),
    )  # one database
    make_user(worker_a)
    for worker in (worker_a, worker_b, worker_a):  # the run of failures is counted in Redis
        assert_bad_credentials(login(browser(worker, "192.0.2.100"), "ada", "wrong password"))

    assert assert_throttled(login(browser(worker_b, "192.0.2.101"), "ada", PASSWORD)) in (1, 2)
    assert_throttled(login(browser(worker_a, "192.0.2.102"), "ADA@example.com", PASSWORD))


@pytest.mark.services
def test_redis_shares_the_per_client_limit(
    limited_app: LimitedAppFactory, redis_prefix: str
) -> None:
    config = {"PORTCULLIS_REDIS_URL": REDIS_URL, "PORTCULLIS_REDIS_PREFIX": redis_prefix}
    workers = (limited_app("shared", **config), limited_app("shared", **config))
    for number in range(PER_CLIENT):
        worker = workers[number % 2]
        assert_bad_credentials(login(browser(worker, "192.0.2.103"), f"n{number}", "wrong"))
    assert_throttled(login(browser(workers[0], "192.0.2.103"), "n-last", "wrong"))
    assert_throttled(login(browser(workers[1], "192.0.2.103"), "n-last", "wrong"))


@pytest.mark.services
def test_redis_keys_hold_no_identity_or_address(
    limited_app: LimitedAppFactory, redis_prefix: str
) -> None:
    app = limited_app(
        PORTCULLIS_REDIS_URL=REDIS_URL,
        PORTCULLIS_REDIS_PREFIX=redis_prefix,
        PORTCULLIS_LOGIN_FREE_FAILURES=1,
    )
    make_user(app, "priya", "priya@example.org")
    ip = "198.51.100.23"
    for identity in ("priya", "priya@example.org", "stranger@example.org", "stranger"):
        for _ in range(2):  # enough to lock each account
            login(browser(app, ip), identity, "wrong password")
    assert_signed_in(register(browser(app, ip), "newcomer"))

    connection = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key.decode() for key in connection.scan_iter(f"{redis_prefix}*")]
    finally:
        connection.close()
    for part in ("login-client", "login-account-client", "login-failures", "login-lock"):
        assert any(part in key for key in keys), (part, keys)
    assert any("register-client" in key for key in keys), keys
    for secret in ("priya", "stranger", "newcomer", "example", ip, ip.replace(".", "")):
        assert not any(secret in key for key in keys), (secret, keys)


def unreachable_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # a port nothing listens on


def test_with_redis_down_sign_in_fails_closed_and_the_rest_works(
    limited_app: LimitedAppFactory,
) -> None:
    app = limited_app(PORTCULLIS_REDIS_URL=unreachable_redis())
    make_user(app)
    client = browser(app, "192.0.2.110")

    refused = login(client, "ada", PASSWORD)
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert "We will be right back" in text(refused)
    assert "Traceback" not in text(refused)

    assert client.get("/").status_code == 200
    assert client.get("/login").status_code == 200
    assert client.get("/register").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unreachable"},
    }
    assert_signed_in(register(client, "newcomer"))  # sign-up does not fail closed


def test_with_redis_down_sign_in_can_fail_open(limited_app: LimitedAppFactory) -> None:
    app = limited_app(
        PORTCULLIS_REDIS_URL=unreachable_redis(), PORTCULLIS_RATE_LIMIT_FAIL_CLOSED=False
    )
    make_user(app)
    assert_bad_credentials(login(browser(app, "192.0.2.111"), "ada", "wrong password"))
    assert_bad_credentials(login(browser(app, "192.0.2.111"), "nobody", "wrong password"))
    assert_signed_in(login(browser(app, "192.0.2.111"), "ada", PASSWORD))


# -- the off switch ----------------------------------------------------------------------------


def test_ratelimit_enabled_false_turns_every_limit_off(limited_app: LimitedAppFactory) -> None:
    app = limited_app(RATELIMIT_ENABLED=False, PORTCULLIS_LOGIN_FREE_FAILURES=1)
    make_user(app)
    client = browser(app, "192.0.2.120")
    for _ in range(PER_CLIENT + 5):  # past the client, account+client and delay limits
        assert_bad_credentials(login(client, "ada", "wrong password"))
    assert_signed_in(login(client, "ada", PASSWORD))
    for number in range(REGISTRATIONS + 2):
        assert_signed_in(register(browser(app, "192.0.2.120"), f"free{number}"))
