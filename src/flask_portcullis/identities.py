"""Who a signed-in request belongs to, read as plain rows: a user's identity fields and role
names in one statement, without building ORM objects (``models.SignedInUser``).

Every signed-in page and every bearer-token call starts here, so it reads on
a connection of its own, outside the ORM session: building entities was most
of the check's cost. The entity and the permissions load on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, bindparam, select
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from .models import IDENTITY_FIELDS, DbSession, Models, SignedInUser, UserMixin


class Identities:
    """Signed-in users from plain rows, on the connection the per-request check uses."""

    def __init__(self, db: DbSession, models: Models) -> None:
        self._db = db
        self._models = models

    def columns(self) -> list[Any]:
        """The identity columns (labelled ``u_<field>``) and the role name (``role``)."""
        User, Role = self._models.User, self._models.Role
        columns: list[Any] = [getattr(User, name).label(f"u_{name}") for name in IDENTITY_FIELDS]
        return [*columns, Role.name.label("role")]

    def with_roles(self, query: Select[Any]) -> Select[Any]:
        """Join the user's roles to ``query`` (a row per role; one with none)."""
        User, Role, links = self._models.User, self._models.Role, self._models.user_roles
        return query.outerjoin(links, links.c.user_id == User.id).outerjoin(
            Role, Role.id == links.c.role_id
        )

    def build(self, rows: Sequence[Row[Any]]) -> SignedInUser:
        """The user of ``rows`` (at least one, from a query with ``columns``)."""
        first = rows[0]._mapping
        fields = {name: first[f"u_{name}"] for name in IDENTITY_FIELDS}
        roles = tuple(row.role for row in rows if row.role is not None)
        return self.make(fields, roles)

    def make(self, fields: dict[str, Any], roles: tuple[str, ...]) -> SignedInUser:
        """A user of these identity fields and role names (from rows, or a cache)."""
        return SignedInUser(fields, roles, self._load_user, self._permission_names)

    def get(self, user_id: int) -> SignedInUser | None:
        """The user ``user_id`` (with their roles), or None."""
        with self.connection() as connection:
            rows = connection.execute(self._by_id, {"user_id": user_id}).all()
        return self.build(rows) if rows else None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for the per-request check: a pooled one of its own (cheaper than the
        ORM session's transaction). Where the pool has one shared connection (SQLite in
        memory), the session's: returning the shared one would roll back its work."""
        if self._shared_pool:
            yield self._db.connection()
            return
        with self.engine.connect() as connection:
            yield connection

    def commit(self, connection: Connection) -> None:
        """Commit what the check wrote on ``connection`` (see ``connection``)."""
        if self._shared_pool:
            self._db.commit()
        else:
            connection.commit()

    @cached_property
    def _by_id(self) -> Select[Any]:
        User = self._models.User
        return self.with_roles(select(*self.columns())).where(User.id == bindparam("user_id"))

    @cached_property
    def _shared_pool(self) -> bool:
        """Whether the pool hands every caller one connection (decided once, not per request)."""
        return isinstance(self.engine.pool, StaticPool | SingletonThreadPool)

    @cached_property
    def engine(self) -> Engine:
        """The engine of the user tables (a bind of the app's Flask-SQLAlchemy)."""
        bind = self._db.get_bind(mapper=self._models.User)
        assert isinstance(bind, Engine)
        return bind

    def _load_user(self, user_id: int) -> UserMixin | None:
        return self._db.get(self._models.User, user_id)

    def _permission_names(self, user_id: int) -> frozenset[str]:
        Permission, links = self._models.Permission, self._models.user_roles
        grants = self._models.role_permissions
        query = (
            select(Permission.name)
            .join(grants, grants.c.permission_id == Permission.id)
            .join(links, links.c.role_id == grants.c.role_id)
            .where(links.c.user_id == user_id)
        )
        return frozenset(self._db.scalars(query))
