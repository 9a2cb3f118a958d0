"""Key-value caches beside the database (Redis or Memcached), and the one rule that keeps
what they hold of a user or a session from outliving a change.

The rule has two halves. A reader that misses fills the entry only through a
*lease*: before it reads the database it puts a token of its own in the empty
key, and afterwards it replaces the token with the value only if the token is
still there (compare-and-set). A writer that changes what an entry mirrors
overwrites it with a *stale* mark once before its transaction commits and
once after. While a mark stands every reader goes to the database and fills
nothing; a lease that a mark overwrote, or that expired, fills nothing
either, however long its reader paused. So no request acts on a role, flag or
session that the database no longer has, and an evicted entry only costs one
database read.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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

STALE = b"-"  # the mark: "read the database, fill nothing"
LEASE = b"lease:"  # a reader's token in an empty key, until it fills it
STALE_SECONDS = 30  # the mark before a commit: outlives any transaction
SETTLE_SECONDS = 2  # the mark after it: caching resumes soon after
LEASE_SECONDS = 5  # a reader slower than this fills nothing
USER_SECONDS = 60 * 60  # a user's entry, re-read at least hourly
PENDING = "portcullis.stale"  # the ORM session's info key: marks to set again after commit
WATCHED = (*IDENTITY_FIELDS, "roles")  # what a user's entry mirrors
DOWN = "The session store does not answer. Please try again in a moment."


def usable(raw: bytes | None) -> bool:
    """Whether a cache value is an entry (not a miss, a mark or another reader's lease)."""
    return raw is not None and raw != STALE and not raw.startswith(LEASE)


@dataclass(frozen=True)
class Lease:
    """A reader's claim on an empty key (see the module)."""

    key: str
    token: bytes  # what the reader put in the key
    cas: bytes | None = None  # Memcached's version of the key with the token in it


class Cache(Protocol):
    """What the stores need of a cache, on keys already prefixed."""

    prefix: str

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    def lease(self, key: str) -> Lease | None:
        """Claim the empty ``key`` for a fill; None when it is not empty (a mark, a lease)."""

    def fill(self, lease: Lease, value: bytes, seconds: int) -> None:
        """Put ``value`` in the leased key if the lease is still there; else nothing."""

    def mark_stale(self, keys: Iterable[str], seconds: int = STALE_SECONDS) -> None: ...
    def ping(self) -> None: ...


# Replace a reader's lease with its value, unless the key changed since (a mark came).
_FILL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return false
"""


class RedisCache:
    """A ``Cache`` on a Redis client (the Redis session store shares it)."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._fill = client.register_script(_FILL)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with reachable():
            return cast(list[bytes | None], self.client.mget(keys))

    def lease(self, key: str) -> Lease | None:
        token = LEASE + secrets.token_hex(8).encode()
        with reachable():
            taken = self.client.set(key, token, ex=LEASE_SECONDS, nx=True)
        return Lease(key, token) if taken else None

    def fill(self, lease: Lease, value: bytes, seconds: int) -> None:
        with reachable():
            self._fill(keys=[lease.key], args=[lease.token, value, seconds])

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

    def lease(self, key: str) -> Lease | None:
        token = LEASE + secrets.token_hex(8).encode()
        with reachable():
            if not self.client.add(key, token, expire=LEASE_SECONDS, noreply=False):
                return None
            value, version = self.client.gets(key)
        return Lease(key, token, version) if value == token else None

    def fill(self, lease: Lease, value: bytes, seconds: int) -> None:
        if lease.cas is not None:
            self.cas(lease.key, value, seconds, lease.cas)

    def mark_stale(self, keys: Iterable[str], seconds: int = STALE_SECONDS) -> None:
        with reachable():
            self.client.set_many(dict.fromkeys(keys, STALE), expire=seconds, noreply=False)

    def ping(self) -> None:
        with reachable():
            self.client.version()

    def gets(self, key: str) -> tuple[bytes | None, bytes | None]:
        with reachable():
            value, version = self.client.gets(key)
        return value, version

    def cas(self, key: str, value: bytes, seconds: int, version: bytes) -> None:
        """Replace ``key`` only if nobody wrote it since ``gets`` (never over a mark)."""
        with reachable():
            self.client.cas(key, value, version, expire=seconds, noreply=False)


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
    """A server down, unreachable, full or overwhelmed; not a bug of ours (an illegal key)."""
    if isinstance(exc, OSError):  # refused, reset, timed out (pymemcache raises these as is)
        return True
    names = {kind.__name__ for kind in type(exc).__mro__}
    if names & {"ConnectionError", "TimeoutError", "BusyLoadingError", "ReadOnlyError"}:
        return True  # redis-py
    if names & {"OutOfMemoryError", "MemcacheUnexpectedCloseError", "MemcacheServerError"}:
        return True  # Redis at maxmemory with noeviction; Memcached
    # pymemcache's pool, every client busy waiting on a slow server
    return isinstance(exc, RuntimeError) and "Too many objects" in str(exc)


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
        """The user from ``raw`` (what the cache held for them), else from the database,
        filling the cache through a lease when the key was empty."""
        if usable(raw):
            assert raw is not None
            return self._make(*decode_user(raw))
        lease = self.cache.lease(self.key(user_id)) if raw is None else None
        user = self._read(user_id)
        if user is not None and lease is not None:
            self.cache.fill(lease, encode_user(user), USER_SECONDS)
        return user


# -- invalidation ----------------------------------------------------------------------------


def mark_stale(cache: Cache, db: Session | Any, keys: Iterable[str]) -> None:
    """Mark ``keys`` stale now and again when ``db``'s transaction commits."""
    keys = set(keys)
    if keys:
        cache.mark_stale(keys)
        db.info.setdefault(PENDING, set()).update(keys)


def committed(cache: Cache, db: Session) -> None:
    """Set the marks of the transaction that just committed once more, short-lived now (see
    the module). Never raises: the change is committed, and the first marks stand."""
    keys = db.info.pop(PENDING, None)
    if keys:
        try:
            cache.mark_stale(keys, SETTLE_SECONDS)
        except Exception:
            logger.exception("could not mark %d cache entries stale after a commit", len(keys))


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
