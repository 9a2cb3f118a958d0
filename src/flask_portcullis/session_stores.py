"""Where server-side sessions live (``PORTCULLIS_SESSION_STORE``): the SQL database, Redis,
or the database behind a Memcached read-through cache.

A store only keeps records: ``sessions.SessionService`` holds the policy
(ids, lifetimes, the timeout rule, what ending a session also ends) and is
the same over all three, so every store keeps the same promises.

- ``sql``: one statement per signed-in request reads the session, its user
  and their roles.
- ``redis://``: Redis holds the sessions (each expires by its TTL; a set per
  user lists them) and a cache of users (``caches.UserCache``); a signed-in
  request makes no SQL query.
- ``memcached://``: the database stays the record; Memcached caches the
  session and its user. An eviction costs one SQL read, never a session.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Select, bindparam, delete, select, update

from .caches import (
    USER_SECONDS,
    Cache,
    MemcachedCache,
    RedisCache,
    UserCache,
    encode_user,
    mark_stale,
    reachable,
    usable,
)
from .exceptions import Unavailable
from .identities import Identities
from .models import DbSession, Models, SignedInUser
from .settings import Settings

if TYPE_CHECKING:
    from redis import Redis


@dataclass(frozen=True)
class SessionView:
    """A live session as a request sees it."""

    id: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    remember: bool


@dataclass(frozen=True)
class SessionRecord(SessionView):
    """A session as the device list shows it: with the IP and browser it started from."""

    ip: str = ""
    user_agent: str = ""


VIEW_FIELDS = tuple(SessionView.__dataclass_fields__)  # read per request
RECORD_FIELDS = tuple(SessionRecord.__dataclass_fields__)
Found = tuple[SessionView, SignedInUser | None]


class SessionStore(Protocol):
    """Records of sessions, by id (the token's digest). Writes to the database are left to
    the caller's transaction; the other stores write at once."""

    kind: str  # "sql", "redis" or "memcached": /healthz and the doctor name it

    @property
    def users(self) -> UserCache | None:
        """The cache of users beside the sessions, if any."""

    def add(self, record: SessionRecord, seconds: int) -> None: ...

    def find(self, session_id: str, user_hint: int | None) -> Found | None:
        """The session and its user (None when the user is gone), expired or not; ``user_hint``
        is the user the client claims (signed in its cookie or token), to read both at once."""

    def touch(self, record: SessionView, seconds: int) -> bool:
        """Store ``record``'s new last-seen time, and its TTL; False when it has ended."""

    def remove(self, session_ids: Sequence[str], user_id: int | None = None) -> list[SessionView]:
        """End these sessions (only ``user_id``'s when given); return those that were there."""

    def remove_user(self, user_id: int, keep: str | None = None) -> list[SessionView]:
        """End every session of ``user_id`` but ``keep``, in one step; return them."""

    def of_user(self, user_id: int) -> list[SessionRecord]: ...

    def user(self, user_id: int) -> SignedInUser | None:
        """The user as a signed-in request sees them (the bearer-token check)."""

    def ping(self) -> None:
        """Raise Unavailable when the store does not answer (the database is checked apart)."""


class SqlStore:
    """Sessions as rows of ``user_sessions``, read with their user in one statement."""

    kind = "sql"

    def __init__(self, db: DbSession, models: Models, identities: Identities) -> None:
        self._db = db
        self._models = models
        self._identities = identities

    @property
    def users(self) -> UserCache | None:
        return None

    def add(self, record: SessionRecord, seconds: int) -> None:
        columns = {name: getattr(record, name) for name in RECORD_FIELDS}
        self._db.add(self._models.Session(**columns))

    @cached_property
    def _lookup(self) -> Select[Any]:
        """The per-request statement, composed once: the session, its user's identity fields
        and role names in one round trip (a row per role), as plain rows."""
        Session, User = self._models.Session, self._models.User
        columns = [getattr(Session, name).label(f"s_{name}") for name in VIEW_FIELDS]
        query = select(*columns, *self._identities.columns()).join(User, User.id == Session.user_id)
        return self._identities.with_roles(query).where(Session.id == bindparam("session_id"))

    def find(self, session_id: str, user_hint: int | None) -> Found | None:
        # On a connection of its own, outside the ORM session (see identities.py).
        with self._identities.connection() as connection:
            rows = connection.execute(self._lookup, {"session_id": session_id}).all()
        if not rows:
            return None
        first = rows[0]._mapping
        view = SessionView(*(first[f"s_{name}"] for name in VIEW_FIELDS))
        return view, self._identities.build(rows)

    def touch(self, record: SessionView, seconds: int) -> bool:
        Session = self._models.Session
        touch = (
            update(Session).where(Session.id == record.id).values(last_seen_at=record.last_seen_at)
        )
        with self._identities.connection() as connection:
            touched = connection.execute(touch).rowcount
            self._identities.commit(connection)
        return bool(touched)

    def remove(self, session_ids: Sequence[str], user_id: int | None = None) -> list[SessionView]:
        Session = self._models.Session
        condition: ColumnElement[bool] = Session.id.in_(session_ids)
        if user_id is not None:
            condition &= Session.user_id == user_id
        return self._delete(condition) if session_ids else []

    def remove_user(self, user_id: int, keep: str | None = None) -> list[SessionView]:
        Session = self._models.Session
        condition: ColumnElement[bool] = Session.user_id == user_id
        if keep is not None:
            condition &= Session.id != keep
        return self._delete(condition)

    def _delete(self, condition: ColumnElement[bool]) -> list[SessionView]:
        """Delete the sessions ``condition`` selects and return exactly those: with RETURNING
        where the database has it, else after locking them (and, on InnoDB, the gap a new
        session of the same user would take), so none can slip between the two."""
        Session = self._models.Session
        columns = [getattr(Session, name) for name in VIEW_FIELDS]
        if self._db.get_bind(mapper=Session).dialect.delete_returning:
            ended = self._db.execute(delete(Session).where(condition).returning(*columns))
            return [SessionView(*row) for row in ended]
        rows = self._db.execute(select(*columns).where(condition).with_for_update()).all()
        self._db.execute(delete(Session).where(condition))
        return [SessionView(*row) for row in rows]

    def of_user(self, user_id: int) -> list[SessionRecord]:
        Session = self._models.Session
        columns = [getattr(Session, name) for name in RECORD_FIELDS]
        rows = self._db.execute(select(*columns).where(Session.user_id == user_id)).all()
        return [SessionRecord(*row) for row in rows]

    def user(self, user_id: int) -> SignedInUser | None:
        return self._identities.get(user_id)

    def ping(self) -> None:
        pass


def read_pair(
    cache: Cache, users: UserCache, key: str, user_hint: int | None
) -> tuple[bytes | None, bytes | None]:
    """A session's cache value and its claimed user's, in one round trip when the client
    names its user (the user's is None otherwise)."""
    if user_hint is None:
        return cache.get_many([key])[0], None
    raw, raw_user = cache.get_many([key, users.key(user_hint)])
    return raw, raw_user


class MemcachedStore(SqlStore):
    """The SQL records behind a read-through cache of each session and its user."""

    kind = "memcached"
    SECONDS = 60 * 60  # a cached session, re-read at least hourly

    def __init__(
        self,
        db: DbSession,
        models: Models,
        identities: Identities,
        cache: MemcachedCache,
        users: UserCache,
    ) -> None:
        super().__init__(db, models, identities)
        self.cache = cache
        self._users = users
        self._prefix = f"{cache.prefix}:s:"

    @property
    def users(self) -> UserCache:
        return self._users

    def add(self, record: SessionRecord, seconds: int) -> None:
        self.cache.ping()  # every page after a sign-in needs the cache: a 503 now, not then
        super().add(record, seconds)

    def find(self, session_id: str, user_hint: int | None) -> Found | None:
        key = self._prefix + session_id
        raw, raw_user = read_pair(self.cache, self._users, key, user_hint)
        if usable(raw):
            assert raw is not None
            view = decode_view(raw)
            if view.user_id != user_hint:
                raw_user = self.cache.get_many([self._users.key(view.user_id)])[0]
            return view, self._users.load(view.user_id, raw_user)
        # A miss fills through leases taken before the database read (caches.py); a mark or
        # another reader's lease: the database, and nothing filled.
        lease = self.cache.lease(key) if raw is None else None
        user_lease = None
        if user_hint is not None and raw_user is None:
            user_lease = self.cache.lease(self._users.key(user_hint))
        found = super().find(session_id, user_hint)
        if found is not None:
            view, user = found
            if lease is not None:
                self.cache.fill(lease, encode(view), self.SECONDS)
            if user is not None and user_lease is not None and user.id == user_hint:
                self.cache.fill(user_lease, encode_user(user), USER_SECONDS)
        return found

    def touch(self, record: SessionView, seconds: int) -> bool:
        key = self._prefix + record.id
        if not super().touch(record, seconds):  # the row is gone: so is whatever was cached
            mark_stale(self.cache, self._db, [key])
            return False
        raw, version = self.cache.gets(key)
        if usable(raw) and version is not None:
            self.cache.cas(key, encode(record), self.SECONDS, version)
        return True

    def remove(self, session_ids: Sequence[str], user_id: int | None = None) -> list[SessionView]:
        mark_stale(self.cache, self._db, [self._prefix + id for id in session_ids])
        return super().remove(session_ids, user_id)

    def remove_user(self, user_id: int, keep: str | None = None) -> list[SessionView]:
        ended = super().remove_user(user_id, keep)
        mark_stale(self.cache, self._db, [self._prefix + view.id for view in ended])
        return ended

    def user(self, user_id: int) -> SignedInUser | None:
        return self._users.get(user_id)

    def ping(self) -> None:
        self.cache.ping()


# Adds a session to its user's set, dropping the members whose session expired meanwhile.
_ADD = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[4] .. id) == 0 then
    redis.call('SREM', KEYS[2], id)
  end
end
redis.call('SADD', KEYS[2], ARGV[3])
"""

# Ends every session of a user but one in one step: a session started meanwhile cannot slip
# between reading the user's set and deleting its members.
_REMOVE_USER = """
local ended = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] then
    local key = ARGV[1] .. id
    local value = redis.call('GET', key)
    if value then
      redis.call('DEL', key)
      table.insert(ended, value)
    end
    redis.call('SREM', KEYS[1], id)
  end
end
return ended
"""


class RedisStore:
    """Sessions in Redis: ``<prefix>:s:<id>`` per session (expiring by TTL) and
    ``<prefix>:us:<user id>``, the set of a user's session ids.

    The sets have no TTL, so Redis's ``volatile-*`` eviction policies never drop one
    (an ``allkeys-*`` policy could, and "sign out everywhere" would then miss sessions:
    the doctor refuses it); members whose session expired go at the user's next sign-in.
    """

    kind = "redis"

    def __init__(self, cache: RedisCache, users: UserCache) -> None:
        self.cache = cache
        self._users = users
        self._client: Redis = cache.client
        self._prefix = f"{cache.prefix}:s:"
        self._add = self._client.register_script(_ADD)
        self._remove_user = self._client.register_script(_REMOVE_USER)

    @property
    def users(self) -> UserCache:
        return self._users

    def _set_key(self, user_id: int) -> str:
        return f"{self.cache.prefix}:us:{user_id}"

    def add(self, record: SessionRecord, seconds: int) -> None:
        keys = [self._prefix + record.id, self._set_key(record.user_id)]
        with reachable():
            self._add(keys=keys, args=[encode(record), seconds, record.id, self._prefix])

    def find(self, session_id: str, user_hint: int | None) -> Found | None:
        raw, raw_user = read_pair(self.cache, self._users, self._prefix + session_id, user_hint)
        if raw is None:
            return None
        record = decode_record(raw)
        if record.user_id != user_hint:
            raw_user = self.cache.get_many([self._users.key(record.user_id)])[0]
        return record, self._users.load(record.user_id, raw_user)

    def touch(self, record: SessionView, seconds: int) -> bool:
        assert isinstance(record, SessionRecord)  # as find returned it, with a new last-seen
        with reachable():  # XX: a session ended meanwhile stays ended
            key = self._prefix + record.id
            return bool(self._client.set(key, encode(record), ex=seconds, xx=True))

    def remove(self, session_ids: Sequence[str], user_id: int | None = None) -> list[SessionView]:
        if not session_ids:
            return []
        keys = [self._prefix + id for id in session_ids]
        found = [decode_record(raw) for raw in self.cache.get_many(keys) if raw is not None]
        ended = [record for record in found if user_id is None or record.user_id == user_id]
        with reachable(), self._client.pipeline(transaction=True) as pipe:
            for record in ended:
                pipe.delete(self._prefix + record.id)
                pipe.srem(self._set_key(record.user_id), record.id)
            pipe.execute()
        return list(ended)

    def remove_user(self, user_id: int, keep: str | None = None) -> list[SessionView]:
        with reachable():
            ended = self._remove_user(
                keys=[self._set_key(user_id)], args=[self._prefix, keep or ""]
            )
        return [decode_record(raw) for raw in cast(list[bytes], ended)]

    def of_user(self, user_id: int) -> list[SessionRecord]:
        with reachable():
            members = cast(set[bytes], self._client.smembers(self._set_key(user_id)))
        ids = sorted(member.decode() for member in members)
        if not ids:
            return []
        values = self.cache.get_many([self._prefix + id for id in ids])
        return [decode_record(raw) for raw in values if raw is not None]

    def user(self, user_id: int) -> SignedInUser | None:
        return self._users.get(user_id)

    def ping(self) -> None:
        self.cache.ping()

    def eviction_policy(self) -> str | None:
        """Redis's ``maxmemory-policy``, or None where CONFIG is not allowed (managed Redis)."""
        try:
            with reachable():
                found = cast(dict[str, str], self._client.config_get("maxmemory-policy"))
        except Unavailable:
            raise
        except Exception:
            return None
        return found.get("maxmemory-policy")


# -- records as the caches hold them ----------------------------------------------------------


def encode(record: SessionView) -> bytes:
    values: dict[str, Any] = dict(record.__dict__)
    for name in ("created_at", "last_seen_at", "expires_at"):
        values[name] = values[name].isoformat()
    return json.dumps(values, separators=(",", ":")).encode()


def decode_record(raw: bytes) -> SessionRecord:
    values = json.loads(raw)
    for name in ("created_at", "last_seen_at", "expires_at"):
        values[name] = datetime.fromisoformat(values[name])
    return SessionRecord(**values)


def decode_view(raw: bytes) -> SessionView:
    record = decode_record(raw)
    return SessionView(*(getattr(record, name) for name in VIEW_FIELDS))


def seconds_left(until: datetime, now: datetime) -> int:
    """A TTL that ends no earlier than ``until`` (at least one second)."""
    return max(1, math.ceil((until - now) / timedelta(seconds=1)))


# -- choosing one -----------------------------------------------------------------------------


def open_store(
    settings: Settings, db: DbSession, models: Models, identities: Identities
) -> SessionStore:
    """The store ``PORTCULLIS_SESSION_STORE`` names (its client connects on first use)."""
    url = settings.session_store
    if url == "sql":
        return SqlStore(db, models, identities)
    prefix = settings.redis_prefix
    if url.startswith("memcached://"):
        from pymemcache.client.base import PooledClient

        parts = urlsplit(url)  # settings.store_url_ok made sure it has a host and a port
        client = PooledClient(
            (parts.hostname or "", parts.port),
            connect_timeout=1,
            timeout=1,
            max_pool_size=64,
        )
        memcached = MemcachedCache(client, prefix)
        return MemcachedStore(db, models, identities, memcached, user_cache(memcached, identities))
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    cache = RedisCache(client, prefix)
    return RedisStore(cache, user_cache(cache, identities))


def user_cache(cache: RedisCache | MemcachedCache, identities: Identities) -> UserCache:
    return UserCache(cache, cache.prefix, identities.get, identities.make)
