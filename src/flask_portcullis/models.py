"""Database models: mixins a host app can extend, and the builder that maps them.

A host app keeps its own ``db`` and, if it likes, its own ``User`` class::

    class User(UserMixin, db.Model):
        __tablename__ = "users"
        shoe_size: Mapped[int | None]

    portcullis = Portcullis(app, db=db, user_model=User)

:func:`build_models` then maps roles, permissions and session records on the
same ``db``, so one migration history covers every table. Without a
``user_model`` it maps a plain ``User`` on table ``users``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import flask_login
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship, scoped_session
from sqlalchemy.sql.elements import conv
from sqlalchemy.sql.schema import ColumnCollectionConstraint
from sqlalchemy.types import TypeDecorator, TypeEngine

from .clock import utcnow
from .exceptions import ConfigurationError
from .identity import (
    EMAIL_MAX,
    USERNAME_KEY_MAX,
    USERNAME_SKELETON_MAX,
    identity_key,
    username_key,
    username_skeleton,
)


def key_string(length: int) -> TypeEngine[str]:
    """A VARCHAR compared byte for byte: keys are casefolded already, and MariaDB's default
    collation would otherwise treat "jose" and "josé" as one account."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


# Flask-SQLAlchemy's scoped session (invariant generics make its exact type awkward).
DbSession = scoped_session[Any]

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, return aware UTC: one behaviour on SQLite, PostgreSQL and MariaDB."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        # MySQL/MariaDB DATETIME drops fractions of a second unless asked to keep them.
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# Alembic's recommended convention: every constraint and index has a predictable name, which
# batch migrations (SQLite) need to alter or drop one. Portcullis names its own constraints
# by it whatever the host's metadata says (see name_constraints); hosts may use it too.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _default_username_key(context: Any) -> str:
    """The key of the row's username, for rows a host's own code inserts without one."""
    return username_key(context.get_current_parameters()["username"])


def _default_email_key(context: Any) -> str:
    return identity_key(context.get_current_parameters()["email"])


def _default_skeleton(context: Any) -> str:
    """The skeleton of the row's key, for rows inserted without one (host apps, old scripts)."""
    parameters = context.get_current_parameters()
    key = parameters.get("username_key") or username_key(parameters["username"])
    return username_skeleton(key)


class UserChecks(flask_login.UserMixin):
    """The checks every view of a user answers alike: the ORM user (``UserMixin``) and the
    light one a signed-in request gets (``SignedInUser``)."""

    if TYPE_CHECKING:
        active: bool
        email_verified_at: datetime | None

        @property
        def roles(self) -> Sequence[Any]: ...

        @property
        def permission_names(self) -> frozenset[str]: ...

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users.
        return self.active

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def has_role(self, name: str) -> bool:
        """Tell whether the user holds the role called ``name``."""
        return any(role.name == name for role in self.roles)

    def has_permission(self, name: str) -> bool:
        """The one permission check: does any of the user's roles grant ``name``?"""
        return name in self.permission_names


class UserMixin(UserChecks):
    """The columns Portcullis needs on a user; add your own beside them."""

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    # Casefolded NFKC forms carry the unique indexes (see identity.py).
    username_key: Mapped[str] = mapped_column(
        key_string(USERNAME_KEY_MAX), unique=True, default=_default_username_key
    )
    # UTS #39 skeleton of username_key: one account per look (see identity.username_skeleton).
    username_skeleton: Mapped[str] = mapped_column(
        key_string(USERNAME_SKELETON_MAX), unique=True, index=True, default=_default_skeleton
    )
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(
        key_string(EMAIL_MAX), unique=True, default=_default_email_key
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    if TYPE_CHECKING:
        roles: Mapped[list[RoleMixin]]

    @declared_attr.directive
    def __table_args__(cls) -> dict[str, Any]:
        # SQLite must never reuse a deleted user's id: sessions, role links and the audit
        # trail name users by id. (Declare your own __table_args__? Keep this in it.)
        return {"sqlite_autoincrement": True}

    @property
    def permission_names(self) -> frozenset[str]:
        """Every permission the user's roles grant."""
        return frozenset(perm.name for role in self.roles for perm in role.permissions)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


#: What a signed-in request reads of its user with its session, in one statement. Not
#: ``last_login_at``: every sign-in changes it, and a session store's cached user would go
#: stale at each (no page of a signed-in user shows it; the entity has it).
IDENTITY_FIELDS = (
    "id",
    "username",
    "email",
    "email_verified_at",
    "active",
    "created_at",
)


@dataclass(frozen=True)
class RoleName:
    """A role as the signed-in user carries it: its name (the ORM role: ``user.entity``)."""

    name: str


class SignedInUser(UserChecks):
    """The signed-in user as every page sees it (``current_user``).

    Its identity fields and role names come with the session check, in one
    statement and without building ORM objects; anything else, such as a
    host's own columns and relationships, is read from the ORM entity,
    loaded on first use (``entity``). Services take the entity.
    """

    if TYPE_CHECKING:
        id: int
        roles: tuple[RoleName, ...]
        _entity: UserMixin | None
        _permission_names: frozenset[str] | None
        _load: Callable[[int], UserMixin | None]
        _permissions: Callable[[int], frozenset[str]]
        username: str
        email: str
        email_verified_at: datetime | None
        active: bool
        created_at: datetime

    def __init__(
        self,
        fields: dict[str, Any],
        roles: tuple[str, ...],
        load: Callable[[int], UserMixin | None],
        permissions: Callable[[int], frozenset[str]],
    ) -> None:
        self.__dict__.update(
            fields,
            roles=tuple(RoleName(name) for name in roles),
            _load=load,
            _permissions=permissions,
            _entity=None,
            _permission_names=None,
        )

    @property
    def entity(self) -> UserMixin:
        """The ORM user, loaded once (in the request's database session)."""
        if self._entity is None:
            loaded = self._load(self.id)
            if loaded is None:
                raise LookupError(f"user {self.id} is gone")
            self._entity = loaded
        return self._entity

    def __getattr__(self, name: str) -> Any:
        # Only for what the identity fields lack: the entity's other columns and methods.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.entity, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # A change is a change to the user: it goes to the entity, to be committed with it.
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        setattr(self.entity, name, value)
        if name in self.__dict__:
            self.__dict__[name] = value

    @property
    def permission_names(self) -> frozenset[str]:
        """Every permission the roles grant: one query, on first use."""
        if self._permission_names is None:
            self._permission_names = self._permissions(self.id)
        return self._permission_names

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


def entity(user: UserMixin | SignedInUser) -> UserMixin:
    """The ORM user behind ``current_user`` (or the user itself when it is one)."""
    return user.entity if isinstance(user, SignedInUser) else user


#: The columns Portcullis itself sets and relies on; never a sign-up field.
PORTCULLIS_COLUMNS = frozenset(UserMixin.__annotations__)


def require_signup_columns(
    user_model: type[UserMixin] | None, names: Iterable[str], *, source: str = "Sign-up field"
) -> None:
    """Raise ConfigurationError unless every name is a column the host added to its user model.

    Checked by the extension at start-up for a sign-up form's fields, and by the account
    service on every sign-up: no value from outside ever sets what Portcullis decides.
    """
    # The mapper's columns are known without configuring the mappers (the host's other
    # models, named by its relationships, may not be defined yet).
    columns = set() if user_model is None else set(sa_inspect(user_model).columns.keys())
    model_name = "the built-in User" if user_model is None else user_model.__name__
    for name in names:
        if name in PORTCULLIS_COLUMNS:
            raise ConfigurationError(
                f"{source} {name!r} names a column Portcullis sets itself: a sign-up form "
                "must never decide it. Rename the field (and give it a column of its own)."
            )
        if name not in columns:
            fix = (
                f"add `{name}: Mapped[...]` to {model_name} (sign-up stores the value there)"
                if user_model is not None
                else "pass user_model= a class of your own with that column (the built-in "
                "User has Portcullis's columns only)"
            )
            raise ConfigurationError(f"{source} {name!r} is not a column of {model_name}: {fix}.")


class RoleMixin:
    """A named group of permissions."""

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")

    if TYPE_CHECKING:
        permissions: Mapped[list[PermissionMixin]]

    def __repr__(self) -> str:
        return f"<Role {self.name!r}>"


class PermissionMixin:
    """A ``"resource.action"`` string that roles grant."""

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")

    def __repr__(self) -> str:
        return f"<Permission {self.name!r}>"


class SessionMixin:
    """One signed-in device. Only a SHA-256 digest of the session id is stored."""

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    remember: Mapped[bool] = mapped_column(default=False)

    if TYPE_CHECKING:
        user_id: Mapped[int]  # mapped by build_models, with the foreign key


class RefreshTokenMixin:
    """One refresh token of an API session (its family). Only the SHA-256 digest is stored.

    A used token stays until its session ends, so presenting it again is
    recognised as reuse (RFC 6819 5.2.2.3, OAuth 2.0 Security BCP 4.14).
    """

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        session_id: Mapped[str]  # mapped by build_models, with the foreign key

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class TwoFactorMixin:
    """A user's TOTP secret (encrypted) and the last time step used (no replay)."""

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        user_id: Mapped[int]  # primary key and foreign key, mapped by build_models

    secret: Mapped[str] = mapped_column(String(512))
    last_step: Mapped[int] = mapped_column(BigInteger)
    enabled_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RecoveryCodeMixin:
    """One single-use recovery code, stored as a SHA-256 digest."""

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        user_id: Mapped[int]  # mapped by build_models, with the foreign key

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PasskeyMixin:
    """A WebAuthn credential (passkey): its public key, never a secret.

    Looked up by ``credential_key``, a SHA-256 digest of the credential id,
    because credential ids run to 1,023 bytes, too long for a portable
    unique index.
    """

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        user_id: Mapped[int]  # mapped by build_models, with the foreign key

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_key: Mapped[str] = mapped_column(String(64), unique=True)
    credential_id: Mapped[str] = mapped_column(Text)  # base64url, as the browser sends it
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    transports: Mapped[str] = mapped_column(String(255), default="")  # comma-separated hints
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class TrustedDeviceMixin:
    """A browser or API client that signed in to the account before (OWASP device cookies).

    Its sign-in attempts are counted under its own small budget, not the
    account's shared counter, so failures from other clients neither delay
    nor lock it. ``id`` is the SHA-256 digest of the random nonce in the
    token the client holds; the nonce itself is never stored.
    """

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        user_id: Mapped[int]  # mapped by build_models, with the foreign key

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    kind: Mapped[str] = mapped_column(String(16))  # "browser" or "api"


class ProviderLinkMixin:
    """An identity at a sign-in provider, linked to one account: the provider's name and the
    ``subject`` it gives that person (stable and never reassigned, unlike an address).

    ``email`` is the address the provider last gave, shown on the owner's
    connections page only: sign-in goes by subject, never by address.
    """

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        user_id: Mapped[int]  # mapped by build_models, with the foreign key

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class InvitationMixin:
    """An address an administrator invited, with the roles its account will have.

    The link carries a random token (256 bits); only its SHA-256 digest is
    stored, so the table cannot be replayed. Accepting or revoking it, or a
    newer link (resend), ends the old one.
    """

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

        invited_by: Mapped[int | None]  # mapped by build_models, with the foreign key

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    roles: Mapped[str] = mapped_column(String(1000), default="")  # role names, comma-separated
    token_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def role_names(self) -> list[str]:
        return [name for name in self.roles.split(",") if name]


class AuditEventMixin:
    """One security event. Append-only: rows are added, and pruned by age, never edited.

    ``user_id`` has no foreign key on purpose: the trail of a deleted account stays.
    """

    if TYPE_CHECKING:

        def __init__(self, **columns: Any) -> None: ...

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None] = mapped_column(default=None)
    event: Mapped[str] = mapped_column(String(40))
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")


# The unique columns UserMixin adds to a host's user table.
USER_KEY_COLUMNS = {"username_key", "username_skeleton", "email_key"}


def _conventional_name(item: ColumnCollectionConstraint | Index, table: Table) -> str | None:
    columns = [column.name for column in item.columns]
    if isinstance(item, PrimaryKeyConstraint):
        return f"pk_{table.name}"
    if isinstance(item, ForeignKeyConstraint):
        referred = item.elements[0].target_fullname.rpartition(".")[0].rpartition(".")[2]
        return f"fk_{table.name}_{columns[0]}_{referred}"
    if isinstance(item, UniqueConstraint):
        return f"uq_{table.name}_{columns[0]}"
    if isinstance(item, Index):
        return f"ix_{table.name}_{columns[0]}"
    return None


def name_constraints(table: Table, columns: set[str] | None = None) -> None:
    """Give each unnamed constraint and index of ``table`` its NAMING_CONVENTION name.

    Only those on ``columns`` when given: on a host's user table Portcullis names
    what it added and leaves the host's own constraints as the host declared them.
    """
    items: list[ColumnCollectionConstraint | Index] = [
        c for c in table.constraints if isinstance(c, ColumnCollectionConstraint)
    ]
    for item in [*items, *table.indexes]:
        if isinstance(item.name, str):  # named (unnamed is None or SQLAlchemy's marker)
            continue
        if columns is not None and not {c.name for c in item.columns} <= columns:
            continue
        name = _conventional_name(item, table)
        if name is not None:
            item.name = conv(name)


@dataclass(frozen=True)
class Models:
    """The mapped classes one Portcullis instance works with."""

    User: type[UserMixin]
    Role: type[RoleMixin]
    Permission: type[PermissionMixin]
    Session: type[SessionMixin]
    AuditEvent: type[AuditEventMixin]
    RefreshToken: type[RefreshTokenMixin]
    TwoFactor: type[TwoFactorMixin]
    RecoveryCode: type[RecoveryCodeMixin]
    Passkey: type[PasskeyMixin]
    TrustedDevice: type[TrustedDeviceMixin]
    ProviderLink: type[ProviderLinkMixin]
    Invitation: type[InvitationMixin]
    user_roles: Table
    role_permissions: Table


def build_models(db: SQLAlchemy, user_model: type[UserMixin] | None = None) -> Models:
    """Map the Portcullis tables on ``db`` (call once per ``db``, at import time)."""
    base: Any = db.Model
    own_user = user_model is None
    if user_model is None:

        class User(UserMixin, base):
            __tablename__ = "users"

        user_model = User

    user_fk = f"{user_model.__tablename__}.id"

    class Role(RoleMixin, base):
        __tablename__ = "roles"

    class Permission(PermissionMixin, base):
        __tablename__ = "permissions"

    class Session(SessionMixin, base):
        __tablename__ = "user_sessions"
        __table_args__ = (Index("ix_user_sessions_user_id", "user_id"),)
        user_id: Mapped[int] = mapped_column(ForeignKey(user_fk, ondelete="CASCADE"))

    class AuditEvent(AuditEventMixin, base):
        __tablename__ = "audit_events"
        __table_args__ = (
            Index("ix_audit_events_user_id_at", "user_id", "at"),
            Index("ix_audit_events_at", "at"),
            # The sign-in checks (failures since the last sign-in, new device) search one
            # user's events of one kind: without it they read the whole history every time.
            Index("ix_audit_events_user_id_event_id", "user_id", "event", "id"),
            {"sqlite_autoincrement": True},
        )

    class RefreshToken(RefreshTokenMixin, base):
        __tablename__ = "refresh_tokens"
        __table_args__ = (Index("ix_refresh_tokens_session_id", "session_id"),)
        # No foreign key: the session may live in Redis (session_stores.py). Ending a
        # session deletes its tokens (SessionService), whichever store holds it.
        session_id: Mapped[str] = mapped_column(String(64))

    class TwoFactor(TwoFactorMixin, base):
        __tablename__ = "two_factor"
        user_id: Mapped[int] = mapped_column(
            ForeignKey(user_fk, ondelete="CASCADE"), primary_key=True, autoincrement=False
        )

    class RecoveryCode(RecoveryCodeMixin, base):
        __tablename__ = "recovery_codes"
        __table_args__ = (Index("ix_recovery_codes_user_id", "user_id"),)
        user_id: Mapped[int] = mapped_column(ForeignKey(user_fk, ondelete="CASCADE"))

    class Passkey(PasskeyMixin, base):
        __tablename__ = "passkeys"
        __table_args__ = (Index("ix_passkeys_user_id", "user_id"),)
        user_id: Mapped[int] = mapped_column(ForeignKey(user_fk, ondelete="CASCADE"))

    class TrustedDevice(TrustedDeviceMixin, base):
        __tablename__ = "trusted_devices"
        __table_args__ = (Index("ix_trusted_devices_user_id", "user_id"),)
        user_id: Mapped[int] = mapped_column(
            ForeignKey(user_fk, ondelete="CASCADE", name="fk_trusted_devices_user_id_users")
        )

    class ProviderLink(ProviderLinkMixin, base):
        __tablename__ = "provider_links"
        __table_args__ = (
            # One account per identity; one identity per provider and account (the
            # uniques' leading columns serve the lookups by identity and by account).
            UniqueConstraint("provider", "subject", name="uq_provider_links_provider_subject"),
            UniqueConstraint("user_id", "provider", name="uq_provider_links_user_id_provider"),
        )
        user_id: Mapped[int] = mapped_column(ForeignKey(user_fk, ondelete="CASCADE"))

    class Invitation(InvitationMixin, base):
        __tablename__ = "invitations"
        __table_args__ = (UniqueConstraint("token_digest", name="uq_invitations_token_digest"),)
        invited_by: Mapped[int | None] = mapped_column(
            ForeignKey(user_fk, ondelete="SET NULL"), default=None
        )

    user_roles = Table(
        "user_roles",
        db.metadata,
        Column("user_id", ForeignKey(user_fk, ondelete="CASCADE"), primary_key=True),
        Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    )
    role_permissions = Table(
        "role_permissions",
        db.metadata,
        Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
        Column("permission_id", ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True),
    )
    # A user's roles come with the per-request session lookup (one query; see
    # SessionService.resolve_id); a role's permissions only when a check needs them.
    own = (Role, Permission, Session, AuditEvent, RefreshToken, TwoFactor, RecoveryCode, Passkey)
    tables = [
        *(model.__table__ for model in own),
        TrustedDevice.__table__,
        ProviderLink.__table__,
        Invitation.__table__,
    ]
    for table in tables:
        name_constraints(table, None)
    name_constraints(user_roles)
    name_constraints(role_permissions)
    # A host's user table: only what the mixin added (its own constraints stay as declared).
    name_constraints(user_model.__table__, None if own_user else USER_KEY_COLUMNS)
    user_model.roles = relationship(Role, secondary=user_roles)
    Role.permissions = relationship(
        Permission, secondary=role_permissions, order_by=Permission.name
    )
    return Models(
        user_model,
        Role,
        Permission,
        Session,
        AuditEvent,
        RefreshToken,
        TwoFactor,
        RecoveryCode,
        Passkey,
        TrustedDevice,
        ProviderLink,
        Invitation,
        user_roles,
        role_permissions,
    )
