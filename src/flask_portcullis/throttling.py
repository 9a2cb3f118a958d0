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

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
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
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri, **options))
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
            for item in parse_many(limits):
                if not self._limiter.hit(item, scope, identifier):
                    raise Throttled(self._retry_after(item, scope, identifier))
        except StorageError as exc:
            logger.error("rate-limit storage unreachable (%s): %s", scope, exc)
            if fail_closed:
                raise Unavailable("Signing in is paused for a moment. Please try again.") from exc

    def healthy(self) -> bool:
        """Tell whether the storage answers (always true in-process)."""
        try:
            return bool(self._limiter.storage.check())
        except Exception:  # a storage that cannot even be asked is not healthy
            return False

    def _retry_after(self, item: RateLimitItem, scope: str, identifier: str) -> int:
        stats = self._limiter.get_window_stats(item, scope, identifier)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def reset(self) -> None:
        """Forget every count (tests, and an operator clearing a false alarm)."""
        self._limiter.storage.reset()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]
