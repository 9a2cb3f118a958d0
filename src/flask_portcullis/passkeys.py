"""Passkeys (WebAuthn, through the ``webauthn`` package): register, list, remove, sign in.

Only public keys are stored. Credentials are discoverable ("resident"), so a
passkey can start a sign-in on its own, without a username; the same
credential also serves as the second factor after a password. The browser
binds each passkey to the relying-party id (the site's host name), which is
what makes passkeys phishing-resistant: a look-alike site gets nothing to
replay. The challenge lives with the caller (the web layer keeps it in the
session) for five minutes and is used once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import webauthn
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .clock import Clock
from .exceptions import FieldError, PasskeyRejected
from .identity import has_control_characters
from .models import DbSession, Models, PasskeyMixin, UserMixin
from .two_factor import TwoFactorService

CHALLENGE_LIFETIME = 5 * 60
NAME_MAX = 64
CREDENTIAL_JSON_MAX = 16 * 1024  # a real response is 1-2 KiB; refuse anything absurd unparsed
PER_USER_MAX = 20
REJECTED = "That passkey was not accepted. Try again, or use another way to sign in."
# What the library and the JSON parsing raise for an answer that is not a valid one.
BAD_ANSWER = (WebAuthnException, ValueError, TypeError, KeyError)


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: ``id`` is the host name they are bound to (no scheme, no
    port), ``origins`` the exact page origins a response may come from."""

    id: str
    name: str
    origins: tuple[str, ...]


@dataclass(frozen=True)
class Ceremony:
    """Options for ``navigator.credentials.create()``/``get()`` (JSON) and their challenge."""

    options: str
    challenge: bytes


def user_handle(user: UserMixin) -> bytes:
    """The WebAuthn user handle: the account id, no name or address (WebAuthn 14.6.1)."""
    return str(user.id).encode()


def credential_key(credential_id: str) -> str:
    return hashlib.sha256(credential_id.encode()).hexdigest()


class PasskeyService:
    def __init__(
        self, db: DbSession, models: Models, two_factor: TwoFactorService, clock: Clock
    ) -> None:
        self._db = db
        self._models = models
        self._two_factor = two_factor  # keeper of the recovery codes
        self._clock = clock

    # -- state -------------------------------------------------------------------------

    def list_for(self, user: UserMixin) -> list[PasskeyMixin]:
        Passkey = self._models.Passkey
        query = select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id)
        return list(self._db.scalars(query))

    def count(self, user: UserMixin) -> int:
        Passkey = self._models.Passkey
        query = select(func.count(Passkey.id)).where(Passkey.user_id == user.id)
        return int(self._db.scalar(query) or 0)

    def remove(self, user: UserMixin, passkey_id: int) -> PasskeyMixin | None:
        """Delete one of ``user``'s passkeys; return it, or None when it was not theirs.
        With the last second factor gone, so are the recovery codes."""
        Passkey = self._models.Passkey
        passkey = self._db.scalars(
            select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id)
        ).first()
        if passkey is None:
            return None
        self._db.execute(delete(Passkey).where(Passkey.id == passkey.id))
        self._db.commit()
        self._two_factor.factor_removed(user)
        return passkey

    # -- registration ------------------------------------------------------------------

    def registration_options(self, user: UserMixin, rp: RelyingParty) -> Ceremony:
        """Ask for a discoverable credential with user verification where possible; the
        user's existing passkeys are excluded, so one authenticator is not added twice."""
        options = webauthn.generate_registration_options(
            rp_id=rp.id,
            rp_name=rp.name,
            user_id=user_handle(user),
            user_name=user.username,
            user_display_name=user.username,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=self._descriptors(self.list_for(user)),
        )
        return Ceremony(webauthn.options_to_json(options), options.challenge)

    def register(
        self,
        user: UserMixin,
        rp: RelyingParty,
        credential: str,
        challenge: bytes,
        name: str,
    ) -> PasskeyMixin:
        """Verify the browser's response to ``registration_options`` and store the passkey."""
        name = " ".join(name.split())
        if not name or len(name) > NAME_MAX or has_control_characters(name):
            raise FieldError("name", f"Give the passkey a name of 1 to {NAME_MAX} characters.")
        if self.count(user) >= PER_USER_MAX:
            raise FieldError("name", f"You have {PER_USER_MAX} passkeys; remove one first.")
        try:
            parsed = parse_registration_credential_json(_loads(credential))
            verified = webauthn.verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=list(rp.origins),
            )
        except BAD_ANSWER as exc:
            raise PasskeyRejected(REJECTED) from exc
        credential_id = parsed.id
        Passkey = self._models.Passkey
        key = credential_key(credential_id)
        if self._db.scalar(select(Passkey.id).where(Passkey.credential_key == key)) is not None:
            raise PasskeyRejected("That passkey is registered already.")
        transports = parsed.response.transports or []
        passkey = Passkey(
            user_id=user.id,
            credential_key=key,
            credential_id=credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            name=name,
            transports=",".join(t.value for t in transports),
            created_at=self._clock(),
        )
        self._db.add(passkey)
        try:
            self._db.commit()
        except IntegrityError as exc:  # the same passkey, registered by a racing request
            self._db.rollback()
            raise PasskeyRejected("That passkey is registered already.") from exc
        return passkey

    # -- sign-in -----------------------------------------------------------------------

    def authentication_options(
        self, rp: RelyingParty, user: UserMixin | None = None, *, verify_user: bool = True
    ) -> Ceremony:
        """Options for a sign-in: any discoverable passkey when ``user`` is None, else only
        that user's. ``verify_user`` asks for the PIN or biometrics; only the second step
        after a password may do without (the password is the other factor)."""
        options = webauthn.generate_authentication_options(
            rp_id=rp.id,
            allow_credentials=[] if user is None else self._descriptors(self.list_for(user)),
            user_verification=UserVerificationRequirement.REQUIRED
            if verify_user
            else UserVerificationRequirement.PREFERRED,
        )
        return Ceremony(webauthn.options_to_json(options), options.challenge)

    def authenticate(
        self,
        rp: RelyingParty,
        credential: str,
        challenge: bytes,
        user: UserMixin | None = None,
        *,
        verify_user: bool = True,
    ) -> tuple[UserMixin, PasskeyMixin]:
        """Verify a sign-in response; return the passkey's owner and the passkey.

        With ``verify_user`` the authenticator must have verified the person
        (PIN or biometrics): the passkey is then both factors. With ``user``
        the passkey must be one of theirs; without, the answer must name its
        owner (the user handle, WebAuthn 7.2 step 6). The sign counter must
        grow unless the authenticator keeps none (synced passkeys send 0); it
        is advanced with a conditional UPDATE, so of two answers racing with
        one count only one gets through. With no counter that cannot tell a
        replay: the caller must use each challenge once.
        """
        try:
            parsed = parse_authentication_credential_json(_loads(credential))
        except BAD_ANSWER as exc:
            raise PasskeyRejected(REJECTED) from exc
        Passkey = self._models.Passkey
        passkey = self._db.scalars(
            select(Passkey).where(Passkey.credential_key == credential_key(parsed.id))
        ).first()
        if passkey is None or (user is not None and passkey.user_id != user.id):
            raise PasskeyRejected(REJECTED)
        owner = self._db.get(self._models.User, passkey.user_id)
        handle = parsed.response.user_handle
        if owner is None or (handle is None and user is None):
            raise PasskeyRejected(REJECTED)
        if handle is not None and handle != user_handle(owner):
            raise PasskeyRejected(REJECTED)
        try:
            verified = webauthn.verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=list(rp.origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=verify_user,
            )
        except BAD_ANSWER as exc:
            raise PasskeyRejected(REJECTED) from exc
        claimed = self._db.execute(
            update(Passkey)
            .where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
            .values(sign_count=verified.new_sign_count, last_used_at=self._clock())
        )
        self._db.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise PasskeyRejected(REJECTED)
        self._db.refresh(passkey)
        return owner, passkey

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _descriptors(passkeys: Sequence[PasskeyMixin]) -> list[PublicKeyCredentialDescriptor]:
        known = {t.value for t in AuthenticatorTransport}
        return [
            PublicKeyCredentialDescriptor(
                id=webauthn.base64url_to_bytes(p.credential_id),
                transports=[
                    AuthenticatorTransport(t) for t in p.transports.split(",") if t in known
                ]
                or None,
            )
            for p in passkeys
        ]


def _loads(credential: str) -> dict[str, Any]:
    """Parse the browser's JSON, refusing oversized or non-object input before the library."""
    if len(credential) > CREDENTIAL_JSON_MAX:
        raise ValueError("credential too large")
    try:
        value = json.loads(credential)
    except RecursionError as exc:  # a kilobyte of "[" is enough
        raise ValueError("credential nested too deeply") from exc
    if not isinstance(value, dict):
        raise ValueError("credential is not an object")
    return value
