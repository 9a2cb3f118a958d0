"""Deliver mail: over SMTP with the standard ``MAIL_*`` keys, or to the console.

The standard library's smtplib and email packages do all of it (plain,
STARTTLS, SSL, login, timeout) in a few lines, so there is no mail
dependency. Anything with a ``send(message)`` method can replace the sender,
e.g. to hand messages to a task queue (``Portcullis(mail_sender=...)``).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any, Protocol, TextIO

from .exceptions import ConfigurationError, DeliveryFailed
from .identity import mask_email

logger = logging.getLogger("flask_portcullis.mail")


@dataclass(frozen=True)
class Message:
    """One email with a text and an HTML part."""

    to: str
    subject: str
    text: str
    html: str


class MailSender(Protocol):
    """Deliver a message or raise DeliveryFailed."""

    def send(self, message: Message) -> None: ...


def build_email(message: Message, sender: str) -> EmailMessage:
    """Turn a Message into a MIME multipart/alternative email."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)  # RFC 5322 3.6: required
    email["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    return email


@dataclass(frozen=True)
class SMTPSender:
    """Send through an SMTP server; every failure becomes DeliveryFailed."""

    host: str
    port: int = 25
    use_tls: bool = False
    use_ssl: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = "no-reply@localhost"
    timeout: float = 10.0

    def send(self, message: Message) -> None:
        email = build_email(message, self.sender)
        envelope_from = parseaddr(self.sender)[1]
        # SMTP policy: CRLF line ends and no ">From " mangling of lines that start with "From ".
        international = not (envelope_from.isascii() and message.to.isascii())
        data = email.as_bytes(policy=SMTPUTF8 if international else SMTP)
        options = ["SMTPUTF8", "BODY=8BITMIME"] if international else []
        try:
            if self.use_ssl:
                context = ssl.create_default_context()
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.use_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.sendmail(envelope_from, [message.to], data, mail_options=options)
        except (OSError, smtplib.SMTPException, UnicodeError, ValueError) as exc:
            # Log the server's complaint, never the message: it may hold a link.
            logger.error(
                "could not send %r to %s: %s", message.subject, mask_email(message.to), exc
            )
            raise DeliveryFailed("We could not send the email. Please try again.") from exc


@dataclass
class ConsoleSender:
    """Print each whole message, links included: ``make run`` works without a mail server."""

    sender: str = "no-reply@localhost"
    stream: TextIO | None = None

    def send(self, message: Message) -> None:
        out = self.stream or sys.stdout
        rule = "-" * 72
        out.write(
            f"{rule}\nFrom: {self.sender}\nTo: {message.to}\nSubject: {message.subject}\n\n"
            f"{message.text}\n{rule}\n"
        )
        out.flush()


def sender_from_config(config: Mapping[str, Any]) -> MailSender:
    """SMTP when ``MAIL_SERVER`` is set, else the console (the SPEC's mail convention)."""
    sender = config.get("MAIL_DEFAULT_SENDER") or "no-reply@localhost"
    if isinstance(sender, tuple | list):  # Flask-Mail style ("Name", "address")
        sender = formataddr((str(sender[0]), str(sender[1])))
    if not config.get("MAIL_SERVER"):
        return ConsoleSender(sender=str(sender))
    use_tls, use_ssl = bool(config.get("MAIL_USE_TLS")), bool(config.get("MAIL_USE_SSL"))
    if use_tls and use_ssl:
        raise ConfigurationError("Set MAIL_USE_TLS (STARTTLS) or MAIL_USE_SSL, not both.")
    default_port = 465 if use_ssl else 587 if use_tls else 25
    try:
        port = int(config.get("MAIL_PORT", default_port))
        timeout = float(config.get("MAIL_TIMEOUT", 10))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError("MAIL_PORT and MAIL_TIMEOUT must be numbers.") from exc
    if not 0 < port < 65536:
        raise ConfigurationError(f"MAIL_PORT must be between 1 and 65535, not {port}.")
    if timeout <= 0:
        raise ConfigurationError("MAIL_TIMEOUT must be a positive number of seconds.")
    return SMTPSender(
        host=str(config["MAIL_SERVER"]),
        port=port,
        use_tls=use_tls,
        use_ssl=use_ssl,
        username=config.get("MAIL_USERNAME") or None,
        password=config.get("MAIL_PASSWORD") or None,
        sender=str(sender),
        timeout=timeout,
    )
