"""Roles and permissions in the database: the rules the CLI and admin console call."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, select

from .exceptions import Conflict, FieldError, NotFound
from .models import DbSession, Models, PermissionMixin, RoleMixin, UserMixin

ADMIN_ROLE = "admin"
# Roles Portcullis itself relies on: made on first use where no migration made them (a host
# app's own migrations create the tables, not the rows).
BUILT_IN_ROLES = {ADMIN_ROLE: "Full access to the admin console"}


class RoleService:
    """Create roles, grant them permissions, and give them to users."""

    def __init__(self, db: DbSession, models: Models) -> None:
        self._db = db
        self._models = models

    def get(self, name: str) -> RoleMixin | None:
        """Return the role called ``name``, or None."""
        Role = self._models.Role
        return self._db.scalars(select(Role).where(Role.name == name)).first()

    def require(self, name: str) -> RoleMixin:
        """Return the role called ``name`` or raise NotFound."""
        role = self.get(name)
        if role is None and name in BUILT_IN_ROLES:
            role = self.create(name, BUILT_IN_ROLES[name])
        if role is None:
            raise NotFound(f"No role {name!r}. Create it with: flask roles create {name}")
        return role

    def list(self) -> Sequence[RoleMixin]:
        """Return every role, by name."""
        Role = self._models.Role
        return self._db.scalars(select(Role).order_by(Role.name)).all()

    def create(self, name: str, description: str = "") -> RoleMixin:
        """Create a role; raise Conflict when it exists."""
        name = _clean_role_name(name)
        if self.get(name) is not None:
            raise Conflict(f"Role {name!r} exists already.")
        role = self._models.Role(name=name, description=description)
        self._db.add(role)
        self._db.commit()
        return role

    def ensure(self, name: str, description: str = "") -> RoleMixin:
        """Return the role called ``name``, creating it when missing."""
        return self.get(name) or self.create(name, description)

    def delete(self, name: str) -> None:
        """Delete a role; users who held it lose it. The admin role stays: the console needs it."""
        if name == ADMIN_ROLE:
            raise Conflict("The admin role is built in and cannot be deleted.")
        role = self.require(name)
        role.permissions.clear()
        self._db.delete(role)
        self._db.flush()  # first: the flush sees who held it (a session store's cached users)
        self._db.execute(
            self._models.user_roles.delete().where(self._models.user_roles.c.role_id == role.id)
        )
        self._db.commit()

    def grant_permission(self, role_name: str, permission: str) -> PermissionMixin:
        """Let ``role_name`` do ``permission`` (a ``"resource.action"`` string)."""
        role = self.require(role_name)
        name = _clean_permission_name(permission)
        Permission = self._models.Permission
        perm = self._db.scalars(select(Permission).where(Permission.name == name)).first()
        if perm is None:
            perm = Permission(name=name, description="")
            self._db.add(perm)
        if perm not in role.permissions:
            role.permissions.append(perm)
        self._db.commit()
        return perm

    def other_active_holders(self, role_name: str, user_id: int) -> int:
        """How many active accounts but ``user_id`` hold ``role_name``."""
        User, Role, links = self._models.User, self._models.Role, self._models.user_roles
        query = (
            select(func.count())
            .select_from(User)
            .join(links, links.c.user_id == User.id)
            .join(Role, Role.id == links.c.role_id)
            .where(Role.name == role_name, User.active.is_(True), User.id != user_id)
        )
        return int(self._db.scalar(query) or 0)

    def add_to_user(self, user: UserMixin, role_name: str) -> bool:
        """Give ``user`` a role; return False when they had it already."""
        role = self.require(role_name)
        if role in user.roles:
            return False
        user.roles.append(role)
        self._db.commit()
        return True

    def remove_from_user(self, user: UserMixin, role_name: str) -> bool:
        """Take a role from ``user``; return False when they did not have it."""
        role = self.require(role_name)
        if role not in user.roles:
            return False
        user.roles.remove(role)
        self._db.commit()
        return True


# "resource.action": lower-case words joined by dots, e.g. "reports.read".
_PERMISSION = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+\Z")


def _clean_role_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise FieldError("name", "A role name is 1 to 64 printable characters.")
    return name


def _clean_permission_name(name: str) -> str:
    name = name.strip()
    if len(name) > 128 or not _PERMISSION.match(name):
        raise FieldError(
            "name",
            'A permission is "resource.action": lower-case words joined by dots, '
            "at most 128 characters (e.g. reports.read).",
        )
    return name
