"""The links mailed to an address: confirm it, reset the password, move to a new address.

Each link is a signed token (``tokens``) whose fingerprint ends it once used,
so these methods only make, check and follow them; the use cases mail them
and record what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .clock import Clock
from .exceptions import EmailTaken, FieldError, TokenInvalid
from .identity import clean_email, identity_key
from .models import DbSession, Models, UserMixin
from .settings import Settings
from .tokens import Purpose, TokenService


class EmailLinks:
    """Make and follow the links that prove a person reads an address."""

    def __init__(
        self,
        db: DbSession,
        models: Models,
        tokens: TokenService,
        settings: Settings,
        clock: Clock,
        get_user: Callable[[int], UserMixin | None],
    ) -> None:
        self._db = db
        self._models = models
        self._tokens = tokens
        self._settings = settings
        self._clock = clock
        self._get_user = get_user

    def verification_token(self, user: UserMixin) -> str:
        """Confirms the user's current address (dies if the address changes)."""
        return self._tokens.make(Purpose.VERIFY_EMAIL, user)

    def reset_token(self, user: UserMixin) -> str:
        """Sets a new password once (dies with any password change or sign-in)."""
        return self._tokens.make(Purpose.RESET_PASSWORD, user)

    def email_change_token(self, user: UserMixin, new_email: str) -> tuple[str, str]:
        """Check a new address and return it (normalised) with the link that moves to it.

        Nothing changes until the link is followed: the address must prove it
        reaches its owner. A taken address gets the same neutral error as any
        unusable one.
        """
        email = clean_email(new_email)
        if identity_key(email) == user.email_key:
            raise FieldError("email", "That is already your email address.")
        if self._email_taken(email):
            raise EmailTaken()
        return email, self._tokens.make(Purpose.CHANGE_EMAIL, user, email=email)

    def check(self, purpose: Purpose, token: str) -> UserMixin:
        """Return the user a link is for, without using it up (its page is shown first)."""
        user, _ = self._check(purpose, token)
        return user

    def verify_email(self, token: str) -> UserMixin:
        """Mark the address in ``token`` verified, or raise TokenInvalid/TokenExpired."""
        user, _ = self._check(Purpose.VERIFY_EMAIL, token)
        user.email_verified_at = self._clock()
        self._db.commit()
        return user

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
        max_age = (
            self._settings.reset_password_lifetime
            if purpose is Purpose.RESET_PASSWORD
            else self._settings.verify_email_lifetime  # verifying, changing the address
        )
        user, payload = self._tokens.check(purpose, token, max_age, self._get_user)
        if not user.active:
            raise TokenInvalid("This account is deactivated.")
        return user, payload
