"""Rate limits keyed by whatever the rule needs: a client, an address, an account.

Built on ``limits``, the library under Flask-Limiter, used directly because
these rules count by keys that only the service knows (the address a reset
mail goes to) and must behave the same for the HTML pages and the JSON API.
Storage is in-process by default, or Redis (``PORTCULLIS_REDIS_URL``) so every
worker and machine shares the counts. ``RATELIMIT_ENABLED = False`` (the
Flask-Limiter switch) turns every limit off, for benchmarks only.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from functools import cache
from typing import cast

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from .exceptions import Throttled, Unavailable

logger = logging.getLogger("flask_portcullis.throttling")


class Throttle:
    """Count attempts per rule and key; refuse them with Throttled when over the limit."""

    def __init__(
        self, storage_uri: str = "memory://", *, enabled: bool = True, prefix: str = ""
    ) -> None:
        options: dict[str, float | str | bool] = {"wrap_exceptions": True}
        if storage_uri.startswith(("redis", "unix")):
            # Fail fast when Redis is down instead of hanging the request.
            options.update(key_prefix=prefix, socket_connect_timeout=2, socket_timeout=2)
        # A synchronous storage: storage_from_string is typed to allow the async ones too.
        self.storage = cast(Storage, storage_from_string(storage_uri, **options))
        self._limiter = MovingWindowRateLimiter(self.storage)
        self.enabled = enabled

    def hit(self, limits: str, scope: str, key: str, *, fail_closed: bool = False) -> None:
        """Record one attempt under every limit in ``limits``, or raise Throttled.

        ``key`` is hashed, so addresses and IPs are not stored in the clear.
        When the storage (Redis) is down the attempt is allowed and logged,
        unless ``fail_closed``: then Unavailable is raised, so sign-in does not
        become unlimited because Redis went away.
        """
        if not self.enabled:
            return
        identifier = _digest(key)
        try:
            for item in parsed(limits):
                if not self._limiter.hit(item, scope, identifier):
                    raise Throttled(self._retry_after(item, scope, identifier))
        except StorageError as exc:
            logger.error("rate-limit storage unreachable (%s): %s", scope, exc)
            if fail_closed:
                raise Unavailable("Signing in is paused for a moment. Please try again.") from exc

    def claim_once(self, scope: str, key: str, seconds: int) -> bool:
        """True the first time ``key`` is claimed within ``seconds``, False after (whether or
        not limits are enabled: this is a single-use check, not a limit). Raises Unavailable
        when the storage is down, as a replay cannot be ruled out then."""
        try:
            return self.storage.incr(f"portcullis/once/{scope}/{_digest(key)}", seconds) == 1
        except StorageError as exc:
            logger.error("rate-limit storage unreachable (%s): %s", scope, exc)
            raise Unavailable("Signing in is paused for a moment. Please try again.") from exc

    def healthy(self) -> bool:
        """Tell whether the storage answers (always true in-process)."""
        try:
            return bool(self.storage.check())
        except Exception:  # a storage that cannot even be asked is not healthy
            return False

    def _retry_after(self, item: RateLimitItem, scope: str, identifier: str) -> int:
        stats = self._limiter.get_window_stats(item, scope, identifier)
        return max(1, math.ceil(stats.reset_time - time.time()))


@cache
def parsed(limits: str) -> tuple[RateLimitItem, ...]:
    """The limits of a setting, parsed once (settings checked them at start-up)."""
    return tuple(parse_many(limits))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# NIST SP 800-63B 5.2.2: no more than 100 consecutive failed attempts on one account.
MAX_CONSECUTIVE_FAILURES = 100
FAILURE_MEMORY = 30 * 24 * 60 * 60  # how long a run of failures is remembered


class LoginGuard:
    """Sign-in limits (per client, per account and client, growing delays per account) and
    the per-client limit on sign-ups.

    Failures are counted per account (unknown identities by the name typed,
    so they are slowed down exactly like real ones and a 429 says nothing).
    Every attempt is counted as a failure *before* its password is checked,
    with an atomic increment, and only a success clears the count: parallel
    guesses cannot slip through together. After ``free_failures`` in a row,
    each attempt needs a free slot: the first to take it (atomically) may
    check its password and holds the account for twice as long as the last
    holder (up to ``max_delay`` seconds); the others get 429, the right
    password included. At 100 failures in a row the account is locked for
    ``FAILURE_MEMORY`` (30 days) unless its owner resets the password by
    email, which lifts it at once (NIST SP 800-63B 5.2.2).

    A trusted device of the account (one that signed in to it before, see
    ``devices.py``) is counted under its own budget instead
    (``before_device_attempt``): it neither waits for the account's delay
    nor meets its lock, and its failures do not feed the shared counter, so
    an attacker cannot lock the owner out (OWASP device cookies).
    """

    def __init__(
        self,
        throttle: Throttle,
        *,
        per_client: str,
        per_account_client: str,
        registrations_per_client: str,
        free_failures: int,
        max_delay: int,
        per_device: str = "10 per 15 minutes",
        fail_closed: bool = True,
    ) -> None:
        self._throttle = throttle
        self._fail_closed = fail_closed
        self._per_client = per_client
        self._per_account_client = per_account_client
        self._per_device = per_device
        self._registrations = registrations_per_client
        self._free = free_failures
        self._max_delay = max_delay

    def before_attempt(self, account: str, client: str) -> None:
        """Count a sign-in attempt by ``client`` on ``account``, or raise Throttled.

        Raises Unavailable when the counts cannot be reached and the guard fails closed.
        """
        self.before_client_attempt(client)
        pair = f"{account}|{client}"
        self._throttle.hit(
            self._per_account_client, "login-account-client", pair, fail_closed=self._fail_closed
        )
        self.reserve(account)

    def before_device_attempt(self, device: str, client: str) -> None:
        """Count a sign-in attempt by the trusted device ``device`` (its stored id) from
        ``client``, or raise Throttled: the per-client limit and the device's own budget,
        never the account's shared counter or lock. A device over its budget is refused
        like any limit; it does not fall back to the shared counter."""
        self.before_client_attempt(client)
        self._throttle.hit(self._per_device, "login-device", device, fail_closed=self._fail_closed)

    def before_client_attempt(self, client: str) -> None:
        """Count a sign-in attempt that names no account (a passkey) against ``client``."""
        self._throttle.hit(self._per_client, "login-client", client, fail_closed=self._fail_closed)

    def reserve(self, account: str) -> None:
        """Count one password check on ``account`` as a failure until it succeeds, or raise
        Throttled while the account waits out its delay. Also used for re-authentication."""
        if not self._throttle.enabled:
            return
        storage = self._throttle.storage
        try:
            retry = self._retry_after(_lock_key(account))
            if retry:
                raise Throttled(retry)
            count = storage.incr(_count_key(account), FAILURE_MEMORY)
            if count <= self._free:
                return
            if count >= MAX_CONSECUTIVE_FAILURES:
                storage.incr(_lock_key(account), FAILURE_MEMORY)
                raise Throttled(FAILURE_MEMORY)
            delay = min(2 ** (count - self._free), self._max_delay)
            if storage.incr(_lock_key(account), delay) != 1:  # someone else took the slot
                storage.incr(_count_key(account), FAILURE_MEMORY, amount=-1)
                raise Throttled(self._retry_after(_lock_key(account)) or delay)
        except StorageError as exc:
            logger.error("rate-limit storage unreachable while checking %s", "an account")
            if self._fail_closed:
                raise Unavailable("Signing in is paused for a moment. Please try again.") from exc

    def before_registration(self, client: str) -> None:
        """Count one sign-up attempt from ``client``; raise Throttled when over the limit."""
        self._throttle.hit(self._registrations, "register-client", client)

    def succeeded(self, account: str) -> None:
        """End the run of failures (a right password, or a password reset by email)."""
        storage = self._throttle.storage
        try:
            storage.clear(_count_key(account))
            storage.clear(_lock_key(account))
        except StorageError:
            logger.error("could not clear failed sign-ins: rate-limit storage unreachable")

    def retry_after(self, account: str) -> int:
        """Seconds ``account`` must still wait; 0 when it may try now."""
        return self._retry_after(_lock_key(account))

    def failures(self, account: str) -> int:
        """The current run of failed (or not yet successful) password checks on ``account``."""
        return int(self._throttle.storage.get(_count_key(account)))

    def _retry_after(self, key: str) -> int:
        storage = self._throttle.storage
        if not storage.get(key):
            return 0
        return max(1, math.ceil(storage.get_expiry(key) - time.time()))


def _count_key(account: str) -> str:
    return f"portcullis/login-failures/{_digest(account)}"


def _lock_key(account: str) -> str:
    return f"portcullis/login-lock/{_digest(account)}"
