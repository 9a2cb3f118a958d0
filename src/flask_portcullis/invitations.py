"""Invitations: an administrator invites an address with roles; its owner follows a
single-use, expiring link to choose a username and password, and starts with those roles
and a confirmed address. Sites with registration off sign people up this way.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update

from .accounts import AccountService
from .clock import Clock
from .exceptions import EmailTaken, TokenExpired, TokenInvalid
from .identity import clean_email
from .models import DbSession, InvitationMixin, Models, UserMixin
from .rbac import RoleService
from .sessions import digest

DEAD = "This invitation is not valid: it was used, withdrawn or replaced by a newer one."


class Invitations:
    def __init__(
        self,
        db: DbSession,
        models: Models,
        accounts: AccountService,
        roles: RoleService,
        lifetime: int,
        clock: Clock,
    ) -> None:
        self._db = db
        self._models = models
        self._accounts = accounts
        self._roles = roles
        self._lifetime = timedelta(seconds=lifetime)
        self._clock = clock

    def create(
        self, email: str, role_names: Sequence[str], *, by: int | None
    ) -> tuple[InvitationMixin, str]:
        """Invite ``email`` with ``role_names``; return the invitation and its link's token.
        EmailTaken when an account has the address (the admin is told; nobody else)."""
        email = clean_email(email)
        if self._accounts.get_by_email(email) is not None:
            raise EmailTaken()
        for name in role_names:
            self._roles.require(name)  # NotFound for an unknown role
        token = secrets.token_urlsafe(32)
        now = self._clock()
        invitation = self._models.Invitation(
            email=email,
            roles=",".join(dict.fromkeys(role_names)),
            token_digest=digest(token),
            created_at=now,
            expires_at=now + self._lifetime,
            invited_by=by,
        )
        self._db.add(invitation)
        self._db.commit()
        return invitation, token

    def renew(self, invitation: InvitationMixin) -> str:
        """A new link for a pending invitation (the old one dies), valid a full lifetime."""
        self._require_pending(invitation)
        token = secrets.token_urlsafe(32)
        invitation.token_digest = digest(token)
        invitation.expires_at = self._clock() + self._lifetime
        self._db.commit()
        return token

    def revoke(self, invitation: InvitationMixin) -> None:
        self._require_pending(invitation)
        invitation.revoked_at = self._clock()
        self._db.commit()

    def get(self, invitation_id: int) -> InvitationMixin | None:
        return self._db.get(self._models.Invitation, invitation_id)

    def pending(self) -> Sequence[InvitationMixin]:
        """Invitations neither used nor withdrawn, newest first (expired ones included)."""
        Invitation = self._models.Invitation
        query = select(Invitation).where(
            Invitation.used_at.is_(None), Invitation.revoked_at.is_(None)
        )
        return self._db.scalars(query.order_by(Invitation.id.desc())).all()

    def check(self, token: str) -> InvitationMixin:
        """The pending invitation of ``token``; TokenInvalid or TokenExpired otherwise."""
        Invitation = self._models.Invitation
        found = self._db.scalars(
            select(Invitation).where(Invitation.token_digest == digest(token))
        ).first()
        if found is None or found.used_at is not None or found.revoked_at is not None:
            raise TokenInvalid(DEAD)
        if found.expires_at <= self._clock():
            raise TokenExpired("This invitation has expired: ask for a new one.")
        return found

    def accept(self, token: str, username: str, password: str) -> tuple[UserMixin, InvitationMixin]:
        """Make the invited account (a confirmed address, the invitation's roles) and use the
        invitation up. Nothing is kept when either fails: a refused username or password
        leaves the invitation pending, and a link used twice at once makes one account."""
        invitation = self.check(token)
        user = self._accounts.register(username, invitation.email, password, verified=True)
        Invitation = self._models.Invitation
        claimed = self._db.execute(
            update(Invitation)
            .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
            .values(used_at=self._clock())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            self._db.rollback()
            self._accounts.delete(user)
            raise TokenInvalid(DEAD)
        for name in invitation.role_names:
            role = self._roles.get(name)
            if role is not None:  # a role deleted since the invitation is skipped
                user.roles.append(role)
        self._db.commit()
        return user, invitation

    def _require_pending(self, invitation: InvitationMixin) -> None:
        if invitation.used_at is not None or invitation.revoked_at is not None:
            raise TokenInvalid(DEAD)
