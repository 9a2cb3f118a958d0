"""The web side of a WebAuthn ceremony: who the relying party is, and its one-time challenge.

The challenge is kept in the session (signed by Flask) under the purpose it
was made for, taken out when the answer comes back, and good for five
minutes: an answer made for the login page cannot be used to add a passkey.
Taking it out of a cookie does not stop a copy of the cookie being sent
again, so each challenge is also claimed once in the rate-limit storage
(shared through Redis when several processes serve the site).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, session
from webauthn import base64url_to_bytes
from webauthn.helpers import bytes_to_base64url

from ..passkeys import CHALLENGE_LIFETIME, Ceremony, RelyingParty
from ..state import get_state
from .keys import CEREMONY


def relying_party() -> RelyingParty:
    """From PORTCULLIS_WEBAUTHN_RP_ID / _ORIGINS, else this request's host and origin."""
    settings = get_state().settings
    origin = request.host_url.rstrip("/")
    return RelyingParty(
        id=settings.webauthn_rp_id or urlsplit(origin).hostname or "localhost",
        name=settings.site_name,
        origins=settings.webauthn_origins or (origin,),
    )


def begin(purpose: str, ceremony: Ceremony) -> str:
    """Remember the challenge for ``purpose``; return the options for the page's script."""
    now = int(get_state().clock().timestamp())
    pending = session.get(CEREMONY)
    pending = dict(pending) if isinstance(pending, dict) else {}  # one slot per purpose:
    pending[purpose] = {"challenge": bytes_to_base64url(ceremony.challenge), "at": now}
    session[CEREMONY] = pending  # another tab's login page leaves the second step alone
    return ceremony.options


def take_challenge(purpose: str) -> bytes | None:
    """The challenge made for ``purpose`` within five minutes, once; otherwise None."""
    state = get_state()
    pending = session.get(CEREMONY)
    if not isinstance(pending, dict) or not isinstance(pending.get(purpose), dict):
        return None
    pending = dict(pending)
    made = pending.pop(purpose)
    session[CEREMONY] = pending
    at, challenge = made.get("at"), made.get("challenge")
    now = int(state.clock().timestamp())
    if not isinstance(at, int) or not isinstance(challenge, str):
        return None
    if not 0 <= now - at <= CHALLENGE_LIFETIME:
        return None
    if not state.throttle.claim_once("webauthn-challenge", challenge, CHALLENGE_LIFETIME):
        return None
    return base64url_to_bytes(challenge)
