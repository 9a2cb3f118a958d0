"""Blinker signals, one per security event, so a host app can react (alert, log, block).

Each is sent with the app as sender and keyword arguments ``user_id``,
``ip``, ``user_agent`` and ``detail`` (a dict that never holds a password or
token)::

    from flask_portcullis import signals

    @signals.sign_in_failed.connect_via(app)
    def count(sender, user_id, ip, user_agent, detail, **extra): ...

``security_event`` is sent for every event too, with ``event`` added.
"""

from __future__ import annotations

from blinker import NamedSignal, Namespace

from .audit_events import Event

_signals = Namespace()

security_event = _signals.signal("portcullis.security-event")
sign_in = _signals.signal(f"portcullis.{Event.SIGN_IN}")
sign_in_failed = _signals.signal(f"portcullis.{Event.SIGN_IN_FAILED}")
throttled = _signals.signal(f"portcullis.{Event.THROTTLED}")
sign_out = _signals.signal(f"portcullis.{Event.SIGN_OUT}")
session_revoked = _signals.signal(f"portcullis.{Event.SESSION_REVOKED}")
password_changed = _signals.signal(f"portcullis.{Event.PASSWORD_CHANGED}")
password_reset = _signals.signal(f"portcullis.{Event.PASSWORD_RESET}")
email_change_requested = _signals.signal(f"portcullis.{Event.EMAIL_CHANGE_REQUESTED}")
email_changed = _signals.signal(f"portcullis.{Event.EMAIL_CHANGED}")
email_verified = _signals.signal(f"portcullis.{Event.EMAIL_VERIFIED}")
account_created = _signals.signal(f"portcullis.{Event.ACCOUNT_CREATED}")
account_activated = _signals.signal(f"portcullis.{Event.ACCOUNT_ACTIVATED}")
account_deactivated = _signals.signal(f"portcullis.{Event.ACCOUNT_DEACTIVATED}")
account_deleted = _signals.signal(f"portcullis.{Event.ACCOUNT_DELETED}")
role_granted = _signals.signal(f"portcullis.{Event.ROLE_GRANTED}")
role_removed = _signals.signal(f"portcullis.{Event.ROLE_REMOVED}")
two_factor_enabled = _signals.signal(f"portcullis.{Event.TWO_FACTOR_ENABLED}")
two_factor_disabled = _signals.signal(f"portcullis.{Event.TWO_FACTOR_DISABLED}")
recovery_codes_regenerated = _signals.signal(f"portcullis.{Event.RECOVERY_CODES_REGENERATED}")
recovery_code_used = _signals.signal(f"portcullis.{Event.RECOVERY_CODE_USED}")
passkey_added = _signals.signal(f"portcullis.{Event.PASSKEY_ADDED}")
passkey_removed = _signals.signal(f"portcullis.{Event.PASSKEY_REMOVED}")
device_revoked = _signals.signal(f"portcullis.{Event.DEVICE_REVOKED}")
provider_linked = _signals.signal(f"portcullis.{Event.PROVIDER_LINKED}")
provider_unlinked = _signals.signal(f"portcullis.{Event.PROVIDER_UNLINKED}")
account_unlocked = _signals.signal(f"portcullis.{Event.ACCOUNT_UNLOCKED}")
password_reset_sent = _signals.signal(f"portcullis.{Event.PASSWORD_RESET_SENT}")
verification_sent = _signals.signal(f"portcullis.{Event.VERIFICATION_SENT}")
invitation_sent = _signals.signal(f"portcullis.{Event.INVITATION_SENT}")
invitation_revoked = _signals.signal(f"portcullis.{Event.INVITATION_REVOKED}")

BY_EVENT: dict[Event, NamedSignal] = {
    Event(name.removeprefix("portcullis.")): signal
    for name, signal in _signals.items()
    if name != "portcullis.security-event"
}
