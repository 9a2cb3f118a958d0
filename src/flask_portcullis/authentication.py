"""Sign-in rules: a password or second factor checked under the login limits, the account
admitted, and the short-lived challenge between a right password and its second factor.

No request, no flash, no forms: ``usecases.signin`` calls these, records the
audit row and sends the notices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from .accounts import AccountService, guard_key
from .clock import Clock
from .devices import DeviceService
from .exceptions import AccountInactive, EmailNotVerified, InvalidCredentials, TokenInvalid
from .models import DbSession, UserMixin
from .passwords import PasswordHashing
from .settings import Settings
from .throttling import LoginGuard
from .tokens import Purpose, TokenService

# How long a correct password waits for its second factor.
TWO_FACTOR_WINDOW = 5 * 60

T = TypeVar("T")


class Authenticator:
    """Tell who is signing in, under the limits that keep guessing slow."""

    def __init__(
        self,
        db: DbSession,
        accounts: AccountService,
        hashing: PasswordHashing,
        devices: DeviceService,
        tokens: TokenService,
        guard: LoginGuard,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self.hashing = hashing
        self._devices = devices
        self._tokens = tokens
        self.guard = guard  # public: passwordless sign-in counts its clients with it too
        self._settings = settings
        self._clock = clock

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
        user = self._accounts.get_by_identity(identity)
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

    def require_password(self, user: UserMixin, password: str) -> None:
        """Like check_password, but raise InvalidCredentials when it is wrong."""
        if not self.check_password(user, password):
            raise InvalidCredentials()

    def second_factor(self, user: UserMixin, check: Callable[[], T]) -> T:
        """Run ``check`` (a code or passkey check that raises when wrong) under the user's
        second-factor lock: counted as a failure until it passes, like a password. The lock
        is its own, so giving the password again does not reset it."""
        account = f"user:{user.id}:second-factor"
        self.guard.reserve(account)
        result = check()
        self.guard.succeeded(account)
        return result

    def make_challenge(self, user: UserMixin) -> str:
        """A short-lived token saying "the password was right" (held until the second step)."""
        return self._tokens.make(Purpose.TWO_FACTOR, user)

    def check_challenge(self, token: str) -> UserMixin:
        """The user whose password a challenge vouches for (5 minutes), or TokenInvalid."""
        user, _ = self._tokens.check(
            Purpose.TWO_FACTOR, token, TWO_FACTOR_WINDOW, self._accounts.get
        )
        if not user.active:
            raise TokenInvalid("This account is deactivated.")
        return user

    def lift_lock(self, user: UserMixin) -> None:
        """Clear the account's failure count: its owner proved control of the address."""
        self.guard.succeeded(guard_key(user, ""))
