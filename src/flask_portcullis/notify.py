"""Compose and send the account emails: links, notices, and the throttle on sending.

Called by the use cases, for the pages and the API alike. Messages are rendered
from ``templates/portcullis/email/<name>.txt`` and ``.html`` (override them
in your app); links are absolute, from ``SERVER_NAME`` and
``PREFERRED_URL_SCHEME`` when set, else from the request.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import render_template, url_for

from .exceptions import DeliveryFailed, Throttled
from .identity import identity_key, mask_email
from .mail import MailSender, Message
from .models import UserMixin
from .settings import Settings
from .throttling import Throttle

logger = logging.getLogger("flask_portcullis.mail")

SUBJECTS = {
    "verify_email": "Confirm your email address",
    "reset_password": "Reset your password",
    "change_email": "Confirm your new email address",
    "email_change_requested": "Your email address is about to change",
    "password_changed": "Your password was changed",
    "password_reset_done": "Your password was reset",
    "new_sign_in": "New sign-in to your account",
    "registration_attempt": "Someone tried to sign up with your address",
    "factor_changed": "Your sign-in settings changed",
    "changed_by_admin": "An administrator changed your account",
    "invitation": "You are invited",
}


@dataclass(frozen=True)
class Device:
    """Where a request came from, for security notices."""

    ip: str
    user_agent: str
    at: datetime


class Notifier:
    """Render and send one kind of mail per method; raise DeliveryFailed when it cannot go."""

    def __init__(self, sender: MailSender, throttle: Throttle, settings: Settings) -> None:
        self.sender = sender
        self._throttle = throttle
        self._settings = settings
        # One worker is enough: only mails whose timing must not reveal anything go here.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portcullis-mail")
        # False delivers "background" mail in the caller's thread, before the response: the
        # testing kit (flask_portcullis.testing) sets it so a test sees the mail at once.
        self.background_delivery = True

    def limit(self, address: str, client: str) -> None:
        """Count one mail to ``address`` asked for by ``client``; raise Throttled when over.

        Counted for every address asked about, known or not, so a 429 reveals nothing.
        """
        self._throttle.hit(self._settings.mail_limit_per_client, "mail-client", client)
        self._throttle.hit(self._settings.mail_limit_per_address, "mail-to", identity_key(address))

    def compose(self, name: str, to: str, **context: Any) -> Message:
        """Render the text and HTML parts of mail ``name``. Every mail may point to the
        password reset page ("not you? reset your password")."""
        context = {
            "site_name": self._settings.site_name,
            "reset_link": self._reset_link(),
            **context,
        }
        return Message(
            to=to,
            subject=f"{SUBJECTS[name]} · {self._settings.site_name}",
            text=render_template(f"portcullis/email/{name}.txt", **context),
            html=render_template(f"portcullis/email/{name}.html", **context),
        )

    @staticmethod
    def _reset_link() -> str:
        """The reset page's address; none from the shell without SERVER_NAME (the mails sent
        from there do not point to it)."""
        try:
            return url_for("portcullis.forgot_password", _external=True)
        except RuntimeError:
            return ""

    def send(self, name: str, to: str, **context: Any) -> None:
        """Send now; DeliveryFailed reaches the caller, who can tell the user to try again."""
        self.sender.send(self.compose(name, to, **context))

    def send_quietly(self, name: str, to: str, **context: Any) -> None:
        """Send a notice whose failure must not undo what already happened: log it instead."""
        try:
            self.send(name, to, **context)
        except DeliveryFailed:
            logger.warning("notice %r to %s was not delivered", name, mask_email(to))

    def send_in_background(self, name: str, to: str, **context: Any) -> None:
        """Render now, deliver on a worker thread: the response takes the same time either way."""
        message = self.compose(name, to, **context)
        if self.background_delivery:
            self._background.submit(self._deliver_logged, message)
        else:
            self._deliver_logged(message)

    def _deliver_logged(self, message: Message) -> None:
        try:
            self.sender.send(message)
        except DeliveryFailed:
            pass  # already logged by the sender
        except Exception:  # a host's sender may fail in any way; never lose the worker
            logger.exception("mail sender failed")

    # -- the mails -------------------------------------------------------------

    def verification(self, user: UserMixin, token: str, *, quiet: bool = False) -> None:
        """Mail a verification link; ``quiet`` logs a failure instead of raising it."""
        link = url_for("portcullis.verify_email", token=token, _external=True)
        hours = self._settings.verify_email_lifetime // 3600
        send = self.send_quietly if quiet else self.send
        send("verify_email", user.email, user=user, link=link, hours=hours)

    def registration_attempt(self, owner: UserMixin, device: Device, client: str) -> None:
        """Tell an address's owner that someone tried to sign up with it (a few times an hour
        at most; past that, silently nothing, so the visitor's answer never changes)."""
        try:
            self.limit(owner.email, client)
        except Throttled:
            return
        self.send_quietly(
            "registration_attempt",
            owner.email,
            user=owner,
            device=device,
        )

    def password_reset(self, user: UserMixin, token: str) -> None:
        """Mail a reset link on the worker thread: asked for by address, the answer must take
        as long whether or not the address has an account."""
        link = url_for("portcullis.reset_password", token=token, _external=True)
        minutes = self._settings.reset_password_lifetime // 60
        self.send_in_background("reset_password", user.email, user=user, link=link, minutes=minutes)

    def email_change(self, user: UserMixin, new_email: str, token: str, device: Device) -> None:
        """Ask the new address to confirm; then warn the old one (if the first mail went out)."""
        link = url_for("portcullis.confirm_email", token=token, _external=True)
        hours = self._settings.verify_email_lifetime // 3600
        self.send("change_email", new_email, user=user, link=link, hours=hours)
        self.send_quietly(
            "email_change_requested",
            user.email,
            user=user,
            masked=mask_email(new_email),
            device=device,
        )

    def password_changed(self, user: UserMixin, device: Device, *, reset: bool) -> None:
        self.send_quietly(
            "password_reset_done" if reset else "password_changed",
            user.email,
            user=user,
            device=device,
        )

    def sign_in_notice(self, user: UserMixin, device: Device, *, failures: int) -> None:
        """Tell the owner about a sign-in from a new device, or one after many failures."""
        self.send_quietly(
            "new_sign_in",
            user.email,
            user=user,
            device=device,
            failures=failures,
        )

    def factor_changed(self, user: UserMixin, device: Device, *, change: str) -> None:
        """Tell the owner a second factor or its recovery codes changed or were used."""
        self.send_quietly(
            "factor_changed",
            user.email,
            user=user,
            device=device,
            change=change,
        )

    def invitation(self, email: str, token: str, *, roles: list[str]) -> None:
        """Send an invitation's link (DeliveryFailed reaches the admin, who can resend)."""
        link = url_for("portcullis.accept_invitation", token=token, _external=True)
        self.send("invitation", email, link=link, roles=roles)

    def changed_by_admin(self, user: UserMixin, *, change: str) -> None:
        """Tell the owner what a site administrator did to their account."""
        self.send_quietly("changed_by_admin", user.email, user=user, change=change)

    def shutdown(self) -> None:
        """Wait for background mail (tests; a clean process exit)."""
        self._background.shutdown(wait=True)
