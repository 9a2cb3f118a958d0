"""What the pages keep in the browser: the keys of Flask's signed session cookie, and the
one cookie of their own. In one place, so no two features pick the same key."""

from __future__ import annotations

# The session token (its digest is the session's id: see sessions.py).
SESSION_KEY = "_portcullis_sid"
# When the password (or a factor) was last given: the freshness of sensitive pages.
AUTHENTICATED_AT = "_portcullis_auth_at"
# Between a right password and the second factor: the challenge, remember-me, where to go.
SECOND_STEP = "_portcullis_2fa"
# A TOTP secret shown as a QR code, until the user confirms it with a code.
TOTP_SETUP = "_portcullis_totp_setup"
# A WebAuthn ceremony's challenge, until the browser answers it.
CEREMONY = "_portcullis_webauthn"
# The address a signed-out visitor may ask to re-send a confirmation link to: set after a
# sign-up (new or taken: both look alike) and after a sign-in refused for want of one.
PENDING_VERIFICATION = "_portcullis_verify"
# A sign-in provider's round trip: its state, what it is for (sign in, link, re-authenticate)
# and where to go after, until the provider sends the browser back.
PROVIDER_FLOW = "_portcullis_provider_flow"
# An identity a provider vouched for that opens no account yet: waiting for a new person's
# username, or for the owner of the account with its address to sign in and link it.
PENDING_IDENTITY = "_portcullis_provider_identity"

# A cookie of its own, beside the session: the trusted-device tokens of this browser.
DEVICE_COOKIE = "portcullis_device"
