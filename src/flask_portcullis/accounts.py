"""Account rules: register, authenticate, change password, deactivate, delete, export.

No request, no flash, no forms: the use cases (``usecases/``) call these
methods, add the audit row and the mail, and the adapters map the typed
errors they raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from .clock import Clock
from .devices import DeviceService
from .exceptions import (
    AccountInactive,
    EmailNotVerified,
    EmailTaken,
    FieldError,
    InvalidCredentials,
    NotFound,
    TokenInvalid,
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
from .tokens import Purpose, TokenService

# How long a correct password waits for its second factor.
TWO_FACTOR_WINDOW = 5 * 60


T = TypeVar("T")


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
        tokens: TokenService,
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
        self._tokens = tokens
        self.guard = guard  # public: the second sign-in step counts its codes with it too
        self._settings = settings
        self._clock = clock

    # -- lookups ---------------------------------------------------------------

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
        password: str,
        *,
        verified: bool = False,
        client: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> UserMixin:
        """Create an account, or raise FieldError/PasswordRejected naming what to fix.

        ``extra`` holds values for the host's own user columns (its sign-up
        fields, already validated); Portcullis's own columns are refused.

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
            self.guard.before_registration(client)
        username = clean_username(username)
        email = clean_email(email)
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

    # -- sign-in -----------------------------------------------------------------

    def authenticate(
        self,
        identity: str,
        password: str,
        *,
        client: str = "",
        device_tokens: Iterable[str] = (),
    ) -> UserMixin:
        """Return the user whose password this is, or raise InvalidCredentials or Throttled.

        Limits are checked before the password, so the right one does not
        slip past an active lock. Unknown users cost one dummy hash verify
        and are throttled like real ones, so neither timing nor a 429 tells
        who has an account. A legacy or outdated hash is replaced on success.

        ``device_tokens`` are the trusted-device tokens the client holds. One
        that names this account's live device puts the attempt under that
        device's own budget instead of the account's shared counter and lock
        (OWASP device cookies); its success leaves the shared counter as it
        is, so whoever else is guessing stays slowed down. Any other token
        (another account's, forged, revoked) is ignored: the attempt is
        counted as from an unknown client, and nothing tells them apart.
        """
        user = self.get_by_identity(identity)
        account = guard_key(user, identity)
        # Checked for unknown users too (the signatures), so the cost is the same.
        device = self._devices.get(user.id if user is not None else None, device_tokens)
        if device is not None:
            self.guard.before_device_attempt(device.id, client)
        else:
            self.guard.before_attempt(account, client)
        if user is None:
            self.hashing.verify_dummy(password)
            raise InvalidCredentials()
        result = self.hashing.verify(password, user.password_hash)
        if not result.ok:
            raise InvalidCredentials(user.id)
        if device is None:
            self.guard.succeeded(account)
        if result.needs_rehash:
            user.password_hash = self.hashing.hash(password)
        self.admit(user)
        return user

    def admit(self, user: UserMixin) -> None:
        """After a right password, passkey or second factor: refuse a deactivated or (when
        verification is required) unconfirmed account, else note the sign-in. Noting it ends
        any two-factor challenge issued before (its fingerprint holds ``last_login_at``)."""
        if not user.active:
            raise AccountInactive(user.id)
        if self._settings.email_verification == "required" and not user.email_verified:
            raise EmailNotVerified(user.id)
        user.last_login_at = self._clock()
        self._db.commit()

    def check_password(self, user: UserMixin, password: str) -> bool:
        """Tell whether ``password`` is the user's current password (re-authentication).

        Counted like sign-in attempts on the account (raises Throttled), so a
        stolen session cannot be used to guess the password at leisure.
        """
        account = guard_key(user, "")
        self.guard.reserve(account)
        ok = self.hashing.verify(password, user.password_hash).ok
        if ok:
            self.guard.succeeded(account)
        return ok

    # -- changes ---------------------------------------------------------------

    def change_password(self, user: UserMixin, current: str, new: str) -> None:
        """Replace the password after checking the current one (see set_password)."""
        if not self.check_password(user, current):
            raise InvalidCredentials()
        self.set_password(user, new)

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

    def delete_with_password(self, user: UserMixin, password: str) -> None:
        """Delete the account after re-checking the password."""
        if not self.check_password(user, password):
            raise InvalidCredentials()
        self.delete(user)

    # -- email links -----------------------------------------------------------

    def make_verification_token(self, user: UserMixin) -> str:
        """A link token that confirms the user's current address (dies if the address changes)."""
        return self._tokens.make(Purpose.VERIFY_EMAIL, user)

    def check_link(self, purpose: Purpose, token: str) -> UserMixin:
        """Return the user a link is for, without using it up (its page is shown first)."""
        user, _ = self._check(purpose, token)
        return user

    def second_factor(self, user: UserMixin, check: Callable[[], T]) -> T:
        """Run ``check`` (a code or passkey check that raises when wrong) under the user's
        second-factor lock: counted as a failure until it passes, like a password. The lock
        is its own, so giving the password again does not reset it."""
        account = f"user:{user.id}:second-factor"
        self.guard.reserve(account)
        result = check()
        self.guard.succeeded(account)
        return result

    def make_two_factor_challenge(self, user: UserMixin) -> str:
        """A short-lived token saying "the password was right" (the API's second step)."""
        return self._tokens.make(Purpose.TWO_FACTOR, user)

    def check_two_factor_challenge(self, token: str) -> UserMixin:
        """The user whose password a challenge vouches for (5 minutes), or TokenInvalid."""
        return self._check(Purpose.TWO_FACTOR, token)[0]

    def verify_email(self, token: str) -> UserMixin:
        """Mark the address in ``token`` verified, or raise TokenInvalid/TokenExpired."""
        user, _ = self._check(Purpose.VERIFY_EMAIL, token)
        user.email_verified_at = self._clock()
        self._db.commit()
        return user

    def make_reset_token(self, user: UserMixin) -> str:
        """A link token that sets a new password once (dies with any password change or sign-in)."""
        return self._tokens.make(Purpose.RESET_PASSWORD, user)

    def reset_password(self, token: str, new: str) -> UserMixin:
        """Set a new password through a reset link; every session ends and every trusted device
        is forgotten; nobody is signed in."""
        user = self.check_link(Purpose.RESET_PASSWORD, token)
        self.policy.require(new, username=user.username, email=user.email)  # before any write
        # The owner proved control of the address: every trusted device starts over, in the
        # transaction of the new hash (whoever held a device token is trusted no more).
        self._devices.stage_revoke_all(user.id)
        self.set_password(user, new)
        self.guard.succeeded(guard_key(user, ""))  # the owner proved it: lift any lock
        return user

    def request_email_change(
        self, user: UserMixin, password: str, new_email: str
    ) -> tuple[str, str]:
        """Check the password and the new address; return it (normalised) and a link token.

        Nothing changes until the link is followed: the address must prove it
        reaches its owner. A taken address gets the same neutral error as
        any unusable one.
        """
        if not self.check_password(user, password):
            raise InvalidCredentials()
        email = clean_email(new_email)
        if identity_key(email) == user.email_key:
            raise FieldError("email", "That is already your email address.")
        if self._email_taken(email):
            raise EmailTaken()
        return email, self._tokens.make(Purpose.CHANGE_EMAIL, user, email=email)

    def confirm_email_change(self, token: str) -> UserMixin:
        """Switch to the address in ``token``, now verified; raise TokenInvalid or EmailTaken."""
        user, payload = self._check(Purpose.CHANGE_EMAIL, token)
        email = clean_email(str(payload.get("email", "")))
        if self._email_taken(email):
            raise EmailTaken()
        user.email = email
        user.email_key = identity_key(email)
        user.email_verified_at = self._clock()
        try:
            self._db.commit()
        except IntegrityError:
            self._db.rollback()
            raise EmailTaken() from None
        return user

    def _email_taken(self, email: str) -> bool:
        User = self._models.User
        query = select(User.id).where(User.email_key == identity_key(email))
        return self._db.scalars(query).first() is not None

    def _check(self, purpose: Purpose, token: str) -> tuple[UserMixin, dict[str, Any]]:
        max_age = {
            Purpose.RESET_PASSWORD: self._settings.reset_password_lifetime,
            Purpose.TWO_FACTOR: TWO_FACTOR_WINDOW,
        }.get(purpose, self._settings.verify_email_lifetime)  # verifying, changing the address
        user, payload = self._tokens.check(purpose, token, max_age, self.get)
        if not user.active:
            raise TokenInvalid("This account is deactivated.")
        return user, payload


def guard_key(user: UserMixin | None, identity: str) -> str:
    """Count failures per account whichever identity was typed, per name when none matches."""
    return f"user:{user.id}" if user is not None else f"name:{identity_key(identity)}"
