"""Account records: find, register, set a password, end sessions, deactivate, delete.

Signing in is ``authentication``, the mailed links ``email_links``. No
request, no flash, no forms: the use cases (``usecases/``) call these
methods, add the audit row and the mail, and the adapters map the typed
errors they raise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import Select, bindparam, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from .clock import Clock
from .devices import DeviceService
from .exceptions import (
    EmailTaken,
    NotFound,
    UsernameTaken,
)
from .identity import (
    clean_email,
    clean_username,
    has_control_characters,
    identity_key,
    username_key,
    username_lookup_key,
    username_skeleton,
)
from .models import DbSession, Models, UserMixin, require_signup_columns
from .password_policy import PasswordPolicy
from .passwords import PasswordHashing
from .sessions import SessionService
from .settings import Settings
from .throttling import LoginGuard

# The stored hash of an account without a password: no password verifies against it (an
# unknown format costs a dummy verify and fails, see passwords.PasswordHashing.verify).
NO_PASSWORD = ""


class AccountService:
    """Everything that creates, checks or changes a user account."""

    def __init__(
        self,
        db: DbSession,
        models: Models,
        hashing: PasswordHashing,
        policy: PasswordPolicy,
        sessions: SessionService,
        devices: DeviceService,
        guard: LoginGuard,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._db = db
        self._models = models
        self.hashing = hashing
        self.policy = policy
        self._sessions = sessions
        self._devices = devices
        self._guard = guard
        self._settings = settings
        self._clock = clock

    # -- lookups ---------------------------------------------------------------

    def names_of(self, user_ids: Iterable[int]) -> dict[int, str]:
        """The usernames of these accounts (the deleted ones have none), in one query."""
        User = self._models.User
        wanted = set(user_ids)
        if not wanted:
            return {}
        query = select(User.id, User.username).where(User.id.in_(wanted))
        return {row.id: row.username for row in self._db.execute(query)}

    def get(self, user_id: int) -> UserMixin | None:
        """Return the user with ``user_id``, or None."""
        return self._db.get(self._models.User, user_id)

    def get_with_roles(self, user_id: int) -> UserMixin | None:
        """The user and their roles in one round trip (the API's bearer check)."""
        return self._db.execute(self._with_roles, {"user_id": user_id}).unique().scalar()

    @cached_property
    def _with_roles(self) -> Select[UserMixin]:
        User = self._models.User  # composed once, not on every request
        return select(User).where(User.id == bindparam("user_id")).options(joinedload(User.roles))

    def get_by_identity(self, identity: str) -> UserMixin | None:
        """Find a user by username or email, case-insensitively, or return None."""
        key = identity_key(identity)
        if not key or has_control_characters(key):
            return None
        User = self._models.User
        name_key = username_lookup_key(identity)
        query = select(User).where(or_(User.username_key == name_key, User.email_key == key))
        return self._db.scalars(query.limit(1)).first()

    def get_by_email(self, email: str) -> UserMixin | None:
        """Find a user by email address only (a reset link goes to an address, not a name)."""
        key = identity_key(email)
        if not key or has_control_characters(key):
            return None
        User = self._models.User
        return self._db.scalars(select(User).where(User.email_key == key)).first()

    def require_by_identity(self, identity: str) -> UserMixin:
        """Like get_by_identity, but raise NotFound for operators who named a missing user."""
        user = self.get_by_identity(identity)
        if user is None:
            raise NotFound(f"No user {identity!r}.")
        return user

    def search(self, text: str = "", *, limit: int = 50, offset: int = 0) -> Sequence[UserMixin]:
        """Return users whose username or email contains ``text``, oldest first."""
        User = self._models.User
        query = select(User).order_by(User.id)
        key = identity_key(text)
        if has_control_characters(key):
            return []
        if key:
            query = query.where(
                or_(
                    User.username_key.contains(username_lookup_key(text), autoescape=True),
                    User.email_key.contains(key, autoescape=True),
                )
            )
        return self._db.scalars(query.limit(limit).offset(offset)).all()

    def look_alikes(self) -> list[tuple[UserMixin, UserMixin | None]]:
        """Pairs of accounts whose names look alike, later account first, oldest first.

        Sign-up refuses such names; these are older accounts that migration
        0007 kept, storing the later one's skeleton with "#<id>" appended ("#"
        is in no skeleton). The earlier account is None if it has since gone.
        """
        User = self._models.User
        query = select(User).where(User.username_skeleton.contains("#", autoescape=True))
        pairs: list[tuple[UserMixin, UserMixin | None]] = []
        for user in self._db.scalars(query.order_by(User.id)):
            skeleton = username_skeleton(user.username_key)
            if user.username_skeleton != skeleton:
                same = select(User).where(User.username_skeleton == skeleton)
                pairs.append((user, self._db.scalars(same).first()))
        return pairs

    def adopted_duplicates(self) -> list[UserMixin]:
        """Adopted accounts whose name or address another had but for case or Unicode form.

        ``migrating.adopt_users`` kept both and stored the later one's key with
        "#<id>" appended; it signs in by its other identity until renamed.
        """
        User = self._models.User
        query = select(User).where(
            or_(
                User.username_key.contains("#", autoescape=True),
                User.email_key.contains("#", autoescape=True),
            )
        )
        return [
            user
            for user in self._db.scalars(query.order_by(User.id))
            if user.username_key.endswith(f"#{user.id}") or user.email_key.endswith(f"#{user.id}")
        ]

    # -- registration ----------------------------------------------------------

    def register(
        self,
        username: str,
        email: str,
        password: str | None,
        *,
        verified: bool = False,
        client: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> UserMixin:
        """Create an account, or raise FieldError/PasswordRejected naming what to fix.

        ``extra`` holds values for the host's own user columns (its sign-up
        fields, already validated); Portcullis's own columns are refused.
        ``password`` None makes an account with no password (made through a
        sign-in provider): no password opens it until its owner sets one
        through "forgot password".

        Uniqueness is decided by the database's unique indexes, so two
        simultaneous sign-ups with one name, or with two names that look
        alike (one UTS #39 skeleton), yield one account and one error.
        """
        extra = dict(extra or {})
        if extra:
            require_signup_columns(self._models.User, extra)
        if client is not None:  # sign-ups from the web or API; the CLI's are not limited
            if not self._settings.registration:
                raise NotFound("Registration is closed.")
            self._guard.before_registration(client)
        username = clean_username(username)
        email = clean_email(email)
        password_hash = NO_PASSWORD
        if password is not None:
            self.policy.require(password, username=username, email=email)
            # Hash first: a taken address then costs as much as a new one (no timing tell).
            password_hash = self.hashing.hash(password)
        key = username_key(username)
        skeleton = username_skeleton(key)
        self._raise_if_taken(key, skeleton, email)
        now = self._clock()
        user = self._models.User(
            **extra,
            username=username,
            username_key=key,
            username_skeleton=skeleton,
            email=email,
            email_key=identity_key(email),
            password_hash=password_hash,
            email_verified_at=now if verified else None,
            active=True,
            created_at=now,
        )
        self._db.add(user)
        try:
            self._db.commit()
        except IntegrityError:
            self._db.rollback()
            self._raise_if_taken(key, skeleton, email)
            raise
        return user

    def _raise_if_taken(self, key: str, skeleton: str, email: str) -> None:
        """Raise UsernameTaken for a name whose key or skeleton is in use, else EmailTaken."""
        User = self._models.User
        email_key = identity_key(email)
        taken = self._db.execute(
            select(User.username_key, User.username_skeleton, User.email_key).where(
                or_(
                    User.username_key == key,
                    User.username_skeleton == skeleton,
                    User.email_key == email_key,
                )
            )
        ).all()
        if any(row.username_key == key for row in taken):
            raise UsernameTaken()
        if any(row.username_skeleton == skeleton for row in taken):
            raise UsernameTaken(look_alike=True)
        if taken:
            raise EmailTaken()

    # -- changes ---------------------------------------------------------------

    def set_password(self, user: UserMixin, new: str) -> None:
        """Set a new password under the policy and end every session of the user.

        Whoever knew the old password may hold a session: all of them end, in
        the same transaction as the new hash, so neither lands without the
        other (OWASP ASVS 3.3.3). The caller signs the current browser in anew.
        """
        self.policy.require(new, username=user.username, email=user.email)
        user.password_hash = self.hashing.hash(new)
        self._sessions.stage_end_all(user.id)
        self._db.commit()

    def reset_password(self, user: UserMixin, new: str) -> int:
        """Set a new password for an owner who proved control of the address: every session
        ends, every trusted device is forgotten and every sign-in provider unlinked, in the
        transaction of the new hash. Whoever held a device token, or linked a provider
        account of theirs while the address was not the owner's, is shut out. Returns how
        many provider links went."""
        self.policy.require(new, username=user.username, email=user.email)  # before any write
        self._devices.stage_revoke_all(user.id)
        ProviderLink = self._models.ProviderLink
        links = self._db.execute(delete(ProviderLink).where(ProviderLink.user_id == user.id))
        self.set_password(user, new)
        return int(links.rowcount)  # type: ignore[attr-defined]

    def end_everywhere(
        self, user_id: int, *, keep_token: str | None = None, keep_device: str | None = None
    ) -> tuple[int, int]:
        """End every session of a user and stop trusting every device of theirs (but this
        browser's ``keep_*``), in one transaction; return how many of each went."""
        forgotten = self._devices.stage_revoke_all(user_id, keep=keep_device)
        ended = self._sessions.end_all(user_id, keep=keep_token)  # commits both
        return ended, forgotten

    def set_active(self, user: UserMixin, active: bool) -> None:
        """Activate or deactivate; deactivation ends every session in the same transaction."""
        user.active = active
        if not active:
            self._sessions.stage_end_all(user.id)
        self._db.commit()

    def delete(self, user: UserMixin) -> None:
        """Remove the user, their sessions and role links, all or nothing."""
        self._sessions.stage_end_all(user.id)
        user.roles.clear()
        self._db.delete(user)
        self._db.commit()


def has_password(user: UserMixin) -> bool:
    """Tell whether a password can open the account (one made through a provider may
    have none yet)."""
    return user.password_hash != NO_PASSWORD


def guard_key(user: UserMixin | None, identity: str) -> str:
    """Count failures per account whichever identity was typed, per name when none matches."""
    return f"user:{user.id}" if user is not None else f"name:{identity_key(identity)}"
