"""Accounts and the identities at sign-in providers that open them.

An identity is the provider's name and the ``subject`` it gives a person:
stable, never reassigned. Only a stored link signs anyone in; an address,
even a verified one, never does by itself (OWASP ASVS 6.8: a provider
account made with someone else's address must not open their account).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .accounts import has_password
from .clock import Clock
from .exceptions import Conflict
from .models import DbSession, Models, ProviderLinkMixin, UserMixin

# Long enough for any provider's subject (OIDC: at most 255 ASCII characters).
SUBJECT_MAX = 255
EMAIL_MAX = 320


@dataclass(frozen=True)
class Identity:
    """What a provider vouched for, reduced to what every provider can say.

    ``email_verified`` is the provider's own word; an address it does not
    vouch for is kept for the sign-up form only, never matched or trusted.
    ``username`` is a suggestion for a new account's name.
    """

    provider: str
    subject: str
    email: str = ""
    email_verified: bool = False
    username: str = ""

    def as_dict(self) -> dict[str, str | bool]:
        """For a browser's signed session, between the callback and the page that follows."""
        return {
            "provider": self.provider,
            "subject": self.subject,
            "email": self.email,
            "email_verified": self.email_verified,
            "username": self.username,
        }

    @classmethod
    def from_dict(cls, data: object) -> Identity | None:
        """The identity kept by ``as_dict``, or None for anything else."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                provider=str(data["provider"]),
                subject=str(data["subject"]),
                email=str(data.get("email", "")),
                email_verified=data.get("email_verified") is True,
                username=str(data.get("username", "")),
            )
        except KeyError:
            return None


class Federation:
    """Find, make and remove the links between accounts and provider identities."""

    def __init__(self, db: DbSession, models: Models, clock: Clock) -> None:
        self._db = db
        self._models = models
        self._clock = clock

    def account_of(self, identity: Identity) -> UserMixin | None:
        """The account this identity is linked to, if any."""
        link = self._find(identity.provider, identity.subject)
        return None if link is None else self._db.get(self._models.User, link.user_id)

    def used(self, identity: Identity) -> None:
        """Note a sign-in with the identity (when, and the address it gave this time)."""
        link = self._find(identity.provider, identity.subject)
        if link is not None:
            link.last_used_at = self._clock()
            if identity.email:
                link.email = identity.email[:EMAIL_MAX]
            self._db.commit()

    def link(self, user: UserMixin, identity: Identity) -> ProviderLinkMixin:
        """Link ``identity`` to the account; Conflict when it, or another identity at the
        same provider, is linked already (the unique indexes decide, races included)."""
        existing = self._find(identity.provider, identity.subject)
        if existing is not None:
            raise Conflict(
                "That account at the provider is linked already"
                + (" to your account." if existing.user_id == user.id else " to another account.")
            )
        now = self._clock()
        link = self._models.ProviderLink(
            user_id=user.id,
            provider=identity.provider,
            subject=identity.subject,
            email=identity.email[:EMAIL_MAX],
            created_at=now,
            last_used_at=now,
        )
        self._db.add(link)
        try:
            self._db.commit()
        except IntegrityError:  # a race with another link of the identity, or of the account
            self._db.rollback()
            raise Conflict(
                "That account at the provider, or another one there, is linked already."
            ) from None
        return link

    def links_of(self, user_id: int) -> Sequence[ProviderLinkMixin]:
        """The account's links, oldest first."""
        Link = self._models.ProviderLink
        query = select(Link).where(Link.user_id == user_id).order_by(Link.id)
        return self._db.scalars(query).all()

    def unlink(self, user: UserMixin, provider: str, usable: Collection[str]) -> ProviderLinkMixin:
        """Remove the account's link to ``provider``; refuse (Conflict) when it is the last
        way in: no password, no passkey and no other link to a provider still ``usable``
        (configured) would be left."""
        links = self.links_of(user.id)
        link = next((link for link in links if link.provider == provider), None)
        if link is None:
            raise Conflict("Your account is not linked to that provider.")
        others = [other for other in links if other is not link and other.provider in usable]
        if not others and not has_password(user) and not self._has_passkey(user.id):
            raise Conflict(
                "This is the only way to sign in to your account. Set a password first "
                '(use "Forgot your password?" on the sign-in page) or add a passkey, '
                "then unlink it."
            )
        self._db.delete(link)
        self._db.commit()
        return link

    def _find(self, provider: str, subject: str) -> ProviderLinkMixin | None:
        Link = self._models.ProviderLink
        query = select(Link).where(Link.provider == provider, Link.subject == subject)
        return self._db.scalars(query).first()

    def _has_passkey(self, user_id: int) -> bool:
        Passkey = self._models.Passkey
        count = select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
        return bool(self._db.scalar(count))
