"""Key-value caches beside the database (Redis or Memcached), and the one rule that keeps
what they hold of a user or a session from outliving a change.

The rule: a cache entry is only ever *added* (``SET NX``, Memcached ``add``),
never overwritten by a reader, and a writer that changes what an entry
mirrors replaces it with a short-lived mark, *stale*, once before its
transaction commits and once after. While the mark stands every reader goes
to the database and adds nothing, so a reader that read the old row just
before the commit cannot put it back, and an entry that is evicted only
costs one database read. No request ever acts on a role, flag or session
that the database no longer has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from .exceptions import Unavailable
from .models import IDENTITY_FIELDS, Models, SignedInUser

if TYPE_CHECKING:
    from pymemcache.client.base import PooledClient
    from redis import Redis

logger = logging.getLogger("flask_portcullis.caches")

STALE = b"-"  # the mark: "read the database, add nothing"
STALE_SECONDS = 30  # the mark before a commit: outlives any transaction
SETTLE_SECONDS = 2  # the mark after it: outlives any read that began before the commit
USER_SECONDS = 60 * 60  # a user's entry, re-read at least hourly
PENDING = "portcullis.stale"  # the ORM session's info key: marks to set again after commit
WATCHED = (*IDENTITY_FIELDS, "roles")  # what a user's entry mirrors
DOWN = "Signing in is paused for a moment: the session store does not answer."


class Cache(Protocol):
    """The four operations the stores need, on keys already prefixed."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    def add(self, key: str, value: bytes, seconds: int) -> None: ...
    def mark_stale(self, keys: Iterable[str], seconds: int = STALE_SECONDS) -> None: ...
    def ping(self) -> None: ...


class RedisCache:
    """A ``Cache`` on a Redis client (the Redis session store shares it)."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with reachable():
            return cast(list[bytes | None], self.client.mget(keys))

    def add(self, key: str, value: bytes, seconds: int) -> None:
        with reachable():
            self.client.set(key, value, ex=seconds, nx=True)

    def mark_stale(self, keys: Iterable[str], seconds: int = STALE_SECONDS) -> None:
        with reachable(), self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, STALE, ex=seconds)
            pipe.execute()

    def ping(self) -> None:
        with reachable():
            self.client.ping()


class MemcachedCache:
    """A ``Cache`` on a pooled pymemcache client."""

    def __init__(self, client: PooledClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with reachable():
            found = self.client.get_many(keys)
        return [found.get(key) for key in keys]

    def add(self, key: str, value: bytes, seconds: int) -> None:
        with reachable():
            self.client.add(key, value, expire=seconds, noreply=False)

    def mark_stale(self, keys: Iterable[str], seconds: int = STALE_SECONDS) -> None:
        with reachable():
            self.client.set_many(dict.fromkeys(keys, STALE), expire=seconds, noreply=False)

    def ping(self) -> None:
        with reachable():
            self.client.version()

    def gets(self, key: str) -> tuple[bytes | None, bytes | None]:
        with reachable():
            value, token = self.client.gets(key)
        return value, token

    def cas(self, key: str, value: bytes, seconds: int, token: bytes) -> None:
        """Replace ``key`` only if nobody wrote it since ``gets`` (never over a mark)."""
        with reachable():
            self.client.cas(key, value, token, expire=seconds, noreply=False)


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a cache server's failure into Unavailable (a 503, never a request let through)."""
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.error("session store unreachable: %s", exc.__class__.__name__)
        raise Unavailable(DOWN) from exc


def is_outage(exc: BaseException) -> bool:
    """A server down, unreachable or failing; not a bug of ours (an illegal key, say)."""
    if isinstance(exc, OSError):  # refused, reset, timed out (pymemcache raises these as is)
        return True
    names = {kind.__name__ for kind in type(exc).__mro__}
    return bool(
        names & {"ConnectionError", "TimeoutError", "BusyLoadingError", "ReadOnlyError"}
        or names & {"MemcacheUnexpectedCloseError", "MemcacheServerError"}
    )


# -- what a user's entry holds -------------------------------------------------------------


def encode_user(user: SignedInUser) -> bytes:
    fields = {name: getattr(user, name) for name in IDENTITY_FIELDS}
    times = [name for name, value in fields.items() if isinstance(value, datetime)]
    for name in times:
        fields[name] = fields[name].isoformat()
    roles = [role.name for role in user.roles]
    return json.dumps({"f": fields, "t": times, "r": roles}, separators=(",", ":")).encode()


def decode_user(raw: bytes) -> tuple[dict[str, Any], tuple[str, ...]]:
    data = json.loads(raw)
    fields: dict[str, Any] = data["f"]
    for name in data["t"]:
        fields[name] = datetime.fromisoformat(fields[name])
    return fields, tuple(data["r"])


class UserCache:
    """Signed-in users (identity fields and role names) from the cache, read through to the
    database on a miss; every change to what an entry mirrors marks it stale."""

    def __init__(
        self,
        cache: Cache,
        prefix: str,
        read: Callable[[int], SignedInUser | None],
        make: Callable[[dict[str, Any], tuple[str, ...]], SignedInUser],
    ) -> None:
        self.cache = cache
        self._prefix = f"{prefix}:u:"
        self._read = read  # the database (Identities.get)
        self._make = make

    def key(self, user_id: int) -> str:
        return f"{self._prefix}{user_id}"

    def get(self, user_id: int) -> SignedInUser | None:
        return self.load(user_id, self.cache.get_many([self.key(user_id)])[0])

    def load(self, user_id: int, raw: bytes | None) -> SignedInUser | None:
        """The user from ``raw`` (what the cache held for them), else from the database."""
        if raw is not None and raw != STALE:
            return self._make(*decode_user(raw))
        user = self._read(user_id)
        if user is not None and raw is None:
            self.cache.add(self.key(user_id), encode_user(user), USER_SECONDS)
        return user

    def remember(self, user: SignedInUser) -> None:
        """Add ``user`` as just read from the database (never over a mark)."""
        self.cache.add(self.key(user.id), encode_user(user), USER_SECONDS)


# -- invalidation ----------------------------------------------------------------------------


def mark_stale(cache: Cache, db: Session | Any, keys: Iterable[str]) -> None:
    """Mark ``keys`` stale now and again when ``db``'s transaction commits."""
    keys = set(keys)
    if keys:
        cache.mark_stale(keys)
        db.info.setdefault(PENDING, set()).update(keys)


def committed(cache: Cache, db: Session) -> None:
    """Set the marks of the transaction that just committed once more, now short-lived: a
    read that began before the commit cannot outlast it (see the module)."""
    keys = db.info.pop(PENDING, None)
    if keys:
        try:
            cache.mark_stale(keys, SETTLE_SECONDS)
        except Unavailable:  # the first marks stand; they expire with the store's own entries
            logger.error("could not mark %d cache entries stale after a commit", len(keys))


def rolled_back(db: Session) -> None:
    db.info.pop(PENDING, None)


def changed_users(db: Session, models: Models) -> set[int]:
    """Users whose identity fields or roles this flush changes (or who are deleted), and the
    holders of a role renamed or deleted in it. Called before the flush."""
    User, Role, links = models.User, models.Role, models.user_roles
    ids: set[int] = set()
    for obj in db.deleted:
        if isinstance(obj, User) and obj.id is not None:
            ids.add(obj.id)
    roles: list[int] = []
    for obj in db.dirty:
        if isinstance(obj, User):
            attrs: Any = inspect(obj).attrs
            if any(attrs[name].history.has_changes() for name in WATCHED):
                ids.add(obj.id)
        elif isinstance(obj, Role) and inspect(obj).attrs.name.history.has_changes():
            roles.append(obj.id)
    roles += [obj.id for obj in db.deleted if isinstance(obj, Role) and obj.id is not None]
    if roles:  # on the flush's own connection: a query through the session would autoflush
        held = select(links.c.user_id).where(links.c.role_id.in_(roles))
        ids.update(db.connection().scalars(held))
    return ids
