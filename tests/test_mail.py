"""Mail delivery against real SMTP servers (aiosmtpd on 127.0.0.1): plain, STARTTLS, SMTPS,
login, every failure as DeliveryFailed, the console sender and the ``MAIL_*`` settings.

TLS uses a self-signed certificate made once per run with the ``openssl`` CLI; the client is
made to trust it through ``SSL_CERT_FILE``, which ``ssl.create_default_context`` honours, so
certificate and host name checks stay on exactly as in production.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import io
import logging
import re
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from flask import Flask

from flask_portcullis import Portcullis
from flask_portcullis.exceptions import ConfigurationError, DeliveryFailed
from flask_portcullis.mail import ConsoleSender, Message, SMTPSender, sender_from_config

from .conftest import FAST_HASH, Mail, csrf_token, free_port
from .conftest import PASSWORD as ACCOUNT_PASSWORD

LINK = "https://accounts.example.com/reset-password/eyJ1IjoxfQ.tok-EN_secret"
BODY_MARK = "only-in-the-body-7f3a"
SENDER = "Portcullis <noreply@example.com>"
USER, PASSWORD = "mailer", "s3cret-pass"


def make_message(to: str = "ada@example.com") -> Message:
    return Message(
        to=to,
        subject="Grüße — ✓",
        # A lone "." line would end the DATA command unless dot-stuffed.
        text=f"Grüße — ✓\n\nReset your password: {LINK}\n.\nThanks: {BODY_MARK}\n",
        html=f'<p>Grüße — ✓</p><p><a href="{LINK}">Reset</a></p><p>{BODY_MARK}</p>',
    )


# -- servers -------------------------------------------------------------------------------


@dataclass
class Received:
    """One message with what the server knew about its envelope and connection."""

    mail_from: str
    rcpt_tos: list[str]
    mail: Mail
    over_tls: bool
    login: bytes | None


def over_tls(server: SMTPServer) -> bool:
    """Whether this connection is encrypted (implicit TLS or after STARTTLS)."""
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class Recorder:
    """An aiosmtpd handler that keeps every message; ``reject`` refuses one SMTP step."""

    def __init__(self, reject: tuple[str, str] | None = None) -> None:
        self.received: list[Received] = []
        self.reject = reject
        self._lock = threading.Lock()

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.reject and self.reject[0] == "MAIL":
            return self.reject[1]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.reject and self.reject[0] == "RCPT":
            return self.reject[1]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.reject and self.reject[0] == "DATA":
            return self.reject[1]
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=[str(t) for t in envelope.rcpt_tos],
            mail=Mail([str(t) for t in envelope.rcpt_tos], parsed),
            over_tls=over_tls(server),
            login=session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None,
        )
        with self._lock:
            self.received.append(received)
        return "250 OK"

    def only(self) -> Received:
        with self._lock:
            assert len(self.received) == 1, f"expected one message, got {len(self.received)}"
            return self.received[0]


@dataclass
class Attempt:
    login: bytes
    over_tls: bool
    success: bool


class Authenticator:
    """aiosmtpd ``authenticator``: accepts exactly one user and password, records attempts."""

    def __init__(self, user: str = USER, password: str = PASSWORD) -> None:
        self.user = user.encode()
        self.password = password.encode()
        self.attempts: list[Attempt] = []

    def __call__(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        login = auth_data.login if isinstance(auth_data, LoginPassword) else b""
        self.attempts.append(Attempt(login, over_tls(server), ok))
        # handled=False: let aiosmtpd answer 235/535 itself; auth_data ends up in the session.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


Serve = Callable[..., int]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start aiosmtpd Controllers on 127.0.0.1 (keyword arguments go to it); stop them all."""
    with ExitStack() as stack:

        def start(handler: object, **kwargs: Any) -> int:
            port = free_port()
            controller = Controller(
                handler, hostname="127.0.0.1", port=port, ready_timeout=5.0, **kwargs
            )
            controller.start()
            stack.callback(controller.stop)
            return port

        yield start


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel completes the handshake from the
    listen backlog) and never says a word; closing the socket ends it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port: int = sock.getsockname()[1]
        yield port


# -- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_cert(directory: Path, san: str) -> Cert:
    directory.mkdir()
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-subj", "/CN=portcullis-test", "-addext", f"subjectAltName={san}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return Cert(cert, key)


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """Valid for 127.0.0.1 and localhost."""
    return make_cert(tmp_path_factory.mktemp("tls") / "good", "IP:127.0.0.1,DNS:localhost")


@pytest.fixture(scope="session")
def wrong_name_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """Trusted when used, but names another host."""
    return make_cert(tmp_path_factory.mktemp("tls") / "other", "DNS:mail.example.invalid")


def trust(monkeypatch: pytest.MonkeyPatch, cert: Cert | None) -> None:
    """Make ``ssl.create_default_context()`` trust ``cert`` (or nothing extra)."""
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if cert is None:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))


TLS_SHAPES = {
    "starttls": lambda cert: {"tls_context": cert.server_context(), "require_starttls": True},
    "ssl": lambda cert: {"ssl_context": cert.server_context()},
}


class ServeTLS(Protocol):
    def __call__(
        self, shape: str, cert: Cert, *, trusted: bool = True, **kwargs: Any
    ) -> tuple[Recorder, int]: ...


@pytest.fixture
def serve_tls(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> ServeTLS:
    """Start a recording server with ``cert``: STARTTLS required (``"starttls"``) or implicit
    TLS (``"ssl"``), plus ``kwargs`` for the Controller; the client trusts ``cert``, or with
    ``trusted=False`` nothing extra. Returns the recorder and the port."""

    def start(
        shape: str, cert: Cert, *, trusted: bool = True, **kwargs: Any
    ) -> tuple[Recorder, int]:
        trust(monkeypatch, cert if trusted else None)
        recorder = Recorder()
        return recorder, serve(recorder, **TLS_SHAPES[shape](cert), **kwargs)

    return start


# -- helpers -------------------------------------------------------------------------------


def assert_delivery_failed(
    sender: SMTPSender,
    caplog: pytest.LogCaptureFixture,
    *secrets: str,
    message: Message | None = None,
) -> DeliveryFailed:
    """Send; expect exactly DeliveryFailed, logged without the body, any link or ``secrets``."""
    caplog.set_level(logging.DEBUG, logger="flask_portcullis")
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="could not send") as excinfo:
        sender.send(message or make_message())
    assert time.monotonic() - started < 5
    assert type(excinfo.value) is DeliveryFailed
    ours = [r for r in caplog.records if r.name.startswith("flask_portcullis")]
    assert ours, "the failure was not logged"
    logged = [caplog.text, str(excinfo.value), *(r.getMessage() for r in caplog.records)]
    for text in logged:
        for forbidden in (BODY_MARK, LINK, "https://", "Reset your password", *secrets):
            assert forbidden not in text
    return excinfo.value


def smtp(port: int, **kwargs: Any) -> SMTPSender:
    return SMTPSender("127.0.0.1", port, sender=SENDER, **kwargs)


def assert_is_the_message(received: Received, message: Message) -> None:
    mail = received.mail.message
    assert mail.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert received.mail.subject == message.subject
    # On the wire lines end in CRLF; the content must be otherwise unchanged.
    assert received.mail.text.replace("\r\n", "\n") == message.text
    assert received.mail.html.replace("\r\n", "\n").rstrip("\n") == message.html


# -- plain SMTP ----------------------------------------------------------------------------


def test_plain_smtp_delivers_a_complete_multipart_message(serve: Serve) -> None:
    recorder = Recorder()
    port = serve(recorder)
    sender = sender_from_config(
        {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port, "MAIL_DEFAULT_SENDER": SENDER}
    )
    assert isinstance(sender, SMTPSender)
    message = make_message()

    sender.send(message)

    received = recorder.only()
    assert received.mail_from == "noreply@example.com"
    assert received.rcpt_tos == ["ada@example.com"]
    assert not received.over_tls
    assert received.login is None
    mail = received.mail.message
    assert str(mail["From"]) == SENDER
    assert str(mail["To"]) == "ada@example.com"
    assert mail["Subject"] == "Grüße — ✓"
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", str(mail["Message-ID"]))
    assert mail["MIME-Version"] == "1.0"
    assert_is_the_message(received, message)
    assert "Grüße — ✓" in received.mail.text
    assert "Grüße — ✓" in received.mail.html
    assert received.mail.link("/reset-password/") == "/reset-password/eyJ1IjoxfQ.tok-EN_secret"


def test_each_message_gets_its_own_message_id(serve: Serve) -> None:
    recorder = Recorder()
    sender = smtp(serve(recorder))
    sender.send(make_message())
    sender.send(make_message())
    ids = {str(r.mail.message["Message-ID"]) for r in recorder.received}
    assert len(ids) == 2


def test_a_very_long_link_arrives_intact(serve: Serve) -> None:
    """SMTP lines stop at 998 octets; the MIME encoding must keep a long token whole."""
    recorder = Recorder()
    long_link = "https://accounts.example.com/verify-email/" + "A1b2-C3d4_" * 150
    message = Message("ada@example.com", "Verify", f"Open {long_link} now.", f"<a>{long_link}</a>")
    smtp(serve(recorder)).send(message)
    received = recorder.only()
    assert long_link in received.mail.text
    assert long_link in received.mail.html


def test_internationalised_recipient_is_delivered_with_smtputf8(serve: Serve) -> None:
    """clean_email accepts such addresses, so they must be deliverable where supported."""
    recorder = Recorder()
    smtp(serve(recorder)).send(make_message(to="jürgen@exämple.com"))
    received = recorder.only()
    assert received.rcpt_tos == ["jürgen@exämple.com"]
    assert str(received.mail.message["To"]) == "jürgen@exämple.com"


def test_lines_starting_with_from_arrive_unchanged(serve: Serve) -> None:
    recorder = Recorder()
    device = "When: 2026-01-01 12:00 UTC\nFrom IP address: 203.0.113.5\nBrowser: Firefox\n"
    message = Message(
        to="ada@example.com",
        subject="Your password was changed",
        text=f"Your password was changed.\n\n{device}",
        html=f"<p>Your password was changed.</p><pre>{device}</pre>",
    )
    smtp(serve(recorder)).send(message)
    assert_is_the_message(recorder.only(), message)


def test_message_has_a_date_header(serve: Serve) -> None:
    recorder = Recorder()
    smtp(serve(recorder)).send(make_message())
    date = recorder.only().mail.message["Date"]
    assert date is not None
    assert email.utils.parsedate_to_datetime(str(date)) is not None


# -- STARTTLS and implicit TLS (SMTPS) ------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls_delivers_over_a_verified_connection(
    serve_tls: ServeTLS, cert: Cert, host: str
) -> None:
    recorder, port = serve_tls("starttls", cert)
    message = make_message()

    SMTPSender(host, port, use_tls=True, sender=SENDER, timeout=5).send(message)

    received = recorder.only()
    assert received.over_tls
    assert received.mail_from == "noreply@example.com"
    assert_is_the_message(received, message)


def test_ssl_delivers_over_implicit_tls(serve_tls: ServeTLS, cert: Cert) -> None:
    recorder, port = serve_tls("ssl", cert)
    message = make_message()

    smtp(port, use_ssl=True, timeout=5).send(message)

    received = recorder.only()
    assert received.over_tls
    assert_is_the_message(received, message)


@pytest.mark.parametrize(
    ("shape", "cert_fixture", "trusted", "named"),
    [
        ("starttls", "cert", False, None),
        # trusted, but not issued for 127.0.0.1
        ("starttls", "wrong_name_cert", True, "127.0.0.1"),
        ("ssl", "cert", False, None),
    ],
    ids=["starttls-untrusted", "starttls-another-host", "ssl-untrusted"],
)
def test_a_certificate_that_does_not_verify_is_delivery_failed(
    serve_tls: ServeTLS,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    shape: str,
    cert_fixture: str,
    trusted: bool,
    named: str | None,
) -> None:
    recorder, port = serve_tls(shape, request.getfixturevalue(cert_fixture), trusted=trusted)
    tls = {"use_tls": True} if shape == "starttls" else {"use_ssl": True}
    failure = assert_delivery_failed(smtp(port, timeout=5, **tls), caplog)
    assert isinstance(failure.__cause__, ssl.SSLCertVerificationError)
    if named is not None:
        assert named in str(failure.__cause__)
    assert recorder.received == []


@pytest.mark.parametrize(
    ("server", "sender", "to", "error"),
    [
        # The server offers no STARTTLS: never fall back to plain text.
        ({}, {"use_tls": True}, "ada@example.com", smtplib.SMTPNotSupportedError),
        ({}, {"use_ssl": True, "timeout": 5}, "ada@example.com", ssl.SSLError),
        # Credentials configured, no AUTH offered: never quietly send unauthenticated.
        (
            {},
            {"username": USER, "password": PASSWORD},
            "ada@example.com",
            smtplib.SMTPNotSupportedError,
        ),
        # clean_email accepts such addresses; a server without SMTPUTF8 cannot take them.
        ({"enable_SMTPUTF8": False}, {}, "jürgen@exämple.com", smtplib.SMTPNotSupportedError),
    ],
    ids=[
        "starttls-never-falls-back-to-plain-text",
        "ssl-against-a-plain-server",
        "username-but-no-auth-offered",
        "internationalised-recipient-without-smtputf8",
    ],
)
def test_a_plain_server_without_what_the_sender_needs_is_delivery_failed(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    server: dict[str, Any],
    sender: dict[str, Any],
    to: str,
    error: type[Exception],
) -> None:
    recorder = Recorder()
    port = serve(recorder, **server)
    failure = assert_delivery_failed(smtp(port, **sender), caplog, message=make_message(to))
    assert isinstance(failure.__cause__, error)
    assert recorder.received == []


# -- login ---------------------------------------------------------------------------------


def test_login_happens_after_starttls_when_a_username_is_set(
    serve_tls: ServeTLS, cert: Cert
) -> None:
    authenticator = Authenticator()
    recorder, port = serve_tls(
        "starttls",
        cert,
        authenticator=authenticator,
        auth_require_tls=True,
        auth_required=True,
    )
    smtp(port, use_tls=True, username=USER, password=PASSWORD, timeout=5).send(make_message())

    assert authenticator.attempts == [Attempt(USER.encode(), over_tls=True, success=True)]
    received = recorder.only()
    assert received.login == USER.encode()
    assert received.over_tls


def test_login_over_implicit_tls(serve_tls: ServeTLS, cert: Cert) -> None:
    authenticator = Authenticator()
    # aiosmtpd only counts STARTTLS as TLS for AUTH; the whole connection is TLS here.
    recorder, port = serve_tls("ssl", cert, authenticator=authenticator, auth_require_tls=False)
    smtp(port, use_ssl=True, username=USER, password=PASSWORD, timeout=5).send(make_message())

    assert [a.success for a in authenticator.attempts] == [True]
    assert authenticator.attempts[0].over_tls
    assert recorder.only().login == USER.encode()


def test_wrong_password_is_delivery_failed_and_not_logged(
    serve_tls: ServeTLS, cert: Cert, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = Authenticator()
    recorder, port = serve_tls("starttls", cert, authenticator=authenticator, auth_required=True)
    wrong = "not-the-password-93c1"
    sender = smtp(port, use_tls=True, username=USER, password=wrong, timeout=5)
    failure = assert_delivery_failed(sender, caplog, wrong)
    assert isinstance(failure.__cause__, smtplib.SMTPAuthenticationError)
    assert authenticator.attempts
    assert not any(a.success for a in authenticator.attempts)
    assert recorder.received == []


def test_no_login_without_a_username(serve_tls: ServeTLS, cert: Cert) -> None:
    authenticator = Authenticator()
    recorder, port = serve_tls("starttls", cert, authenticator=authenticator)
    smtp(port, use_tls=True, password="ignored-without-user", timeout=5).send(make_message())
    assert authenticator.attempts == []
    assert recorder.only().login is None


def test_non_ascii_password_delivers_or_is_delivery_failed(serve_tls: ServeTLS, cert: Cert) -> None:
    authenticator = Authenticator(password="Grüße-pass")
    recorder, port = serve_tls("starttls", cert, authenticator=authenticator)
    sender = smtp(port, use_tls=True, username=USER, password="Grüße-pass", timeout=5)
    try:
        sender.send(make_message())
    except DeliveryFailed:
        return  # acceptable: a clean, typed failure
    assert recorder.only().login == USER.encode()  # or better: UTF-8 credentials work


# -- failures ------------------------------------------------------------------------------


def test_nothing_listening_is_delivery_failed(caplog: pytest.LogCaptureFixture) -> None:
    failure = assert_delivery_failed(smtp(free_port(), timeout=5), caplog)
    assert isinstance(failure.__cause__, ConnectionRefusedError)


@pytest.mark.parametrize(
    ("reject", "error"),
    [
        (("MAIL", "553 5.7.1 Sender not allowed"), smtplib.SMTPSenderRefused),
        (("RCPT", "550 5.1.1 No such user here"), smtplib.SMTPRecipientsRefused),
        (("DATA", "554 5.7.1 Message rejected as spam"), smtplib.SMTPDataError),
    ],
    ids=["sender", "recipient", "data"],
)
def test_server_refusal_is_delivery_failed(
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    reject: tuple[str, str],
    error: type[Exception],
) -> None:
    recorder = Recorder(reject=reject)
    failure = assert_delivery_failed(smtp(serve(recorder)), caplog)
    assert isinstance(failure.__cause__, error)
    assert recorder.received == []
    # The server's reason is logged for the operator.
    assert reject[1].split(" ", 2)[2] in caplog.text


@pytest.mark.parametrize("use_ssl", [False, True], ids=["plain", "ssl"])
def test_silent_server_times_out_as_delivery_failed(
    silent_port: int, caplog: pytest.LogCaptureFixture, use_ssl: bool
) -> None:
    started = time.monotonic()
    assert_delivery_failed(smtp(silent_port, use_ssl=use_ssl, timeout=0.5), caplog)
    assert 0.4 < time.monotonic() - started < 3


# -- console -------------------------------------------------------------------------------


def test_console_sender_writes_the_whole_text_part() -> None:
    stream = io.StringIO()
    message = make_message()
    ConsoleSender(sender=SENDER, stream=stream).send(message)
    out = stream.getvalue()
    assert f"From: {SENDER}\n" in out
    assert "To: ada@example.com\n" in out
    assert "Subject: Grüße — ✓\n" in out
    assert message.text in out
    assert LINK in out
    assert "<a href" not in out  # the text part, not the HTML


def test_console_sender_defaults_to_stdout_at_send_time(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleSender().send(make_message())
    out = capsys.readouterr().out
    assert "From: no-reply@localhost\n" in out
    assert LINK in out


# -- sender_from_config --------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"MAIL_SERVER": ""}, {"MAIL_SERVER": None}])
def test_no_mail_server_means_console(config: dict[str, Any]) -> None:
    sender = sender_from_config(config)
    assert isinstance(sender, ConsoleSender)
    assert sender.sender == "no-reply@localhost"


def test_console_from_config_uses_default_sender() -> None:
    sender = sender_from_config({"MAIL_DEFAULT_SENDER": ("Portcullis", "noreply@example.com")})
    assert isinstance(sender, ConsoleSender)
    assert sender.sender == "Portcullis <noreply@example.com>"


@pytest.mark.parametrize(
    ("flags", "port"),
    [
        ({}, 25),
        ({"MAIL_USE_TLS": True}, 587),
        ({"MAIL_USE_SSL": True}, 465),
        ({"MAIL_USE_TLS": False, "MAIL_USE_SSL": False}, 25),
    ],
)
def test_smtp_port_defaults(flags: dict[str, Any], port: int) -> None:
    sender = sender_from_config({"MAIL_SERVER": "smtp.example.com", **flags})
    assert sender == SMTPSender(
        host="smtp.example.com",
        port=port,
        use_tls=bool(flags.get("MAIL_USE_TLS")),
        use_ssl=bool(flags.get("MAIL_USE_SSL")),
        username=None,
        password=None,
        sender="no-reply@localhost",
        timeout=10.0,
    )


def test_smtp_settings_are_honoured() -> None:
    sender = sender_from_config(
        {
            "MAIL_SERVER": "smtp.example.com",
            "MAIL_PORT": "2525",  # from the environment it may arrive as a string
            "MAIL_USE_TLS": True,
            "MAIL_USERNAME": USER,
            "MAIL_PASSWORD": PASSWORD,
            "MAIL_DEFAULT_SENDER": "noreply@example.com",
            "MAIL_TIMEOUT": 3,
        }
    )
    assert sender == SMTPSender(
        host="smtp.example.com",
        port=2525,
        use_tls=True,
        use_ssl=False,
        username=USER,
        password=PASSWORD,
        sender="noreply@example.com",
        timeout=3.0,
    )


def test_empty_credentials_mean_no_login() -> None:
    sender = sender_from_config({"MAIL_SERVER": "h", "MAIL_USERNAME": "", "MAIL_PASSWORD": ""})
    assert isinstance(sender, SMTPSender)
    assert sender.username is None
    assert sender.password is None


@pytest.mark.parametrize(
    ("default_sender", "header", "envelope"),
    [
        ("noreply@example.com", "noreply@example.com", "noreply@example.com"),
        (("Portcullis", "noreply@example.com"), "Portcullis <noreply@example.com>", None),
        (["Portcullis", "noreply@example.com"], "Portcullis <noreply@example.com>", None),
        (("Grüße Team", "noreply@example.com"), "Grüße Team <noreply@example.com>", None),
    ],
    ids=["string", "tuple", "list", "non-ascii-name"],
)
def test_default_sender_reaches_the_message(
    serve: Serve, default_sender: Any, header: str, envelope: str | None
) -> None:
    recorder = Recorder()
    port = serve(recorder)
    config = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port, "MAIL_DEFAULT_SENDER": default_sender}
    sender_from_config(config).send(make_message())
    received = recorder.only()
    assert str(received.mail.message["From"]) == header
    assert received.mail_from == (envelope or "noreply@example.com")


def test_default_sender_name_with_a_comma(serve: Serve) -> None:
    recorder = Recorder()
    port = serve(recorder)
    config = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_DEFAULT_SENDER": ("Example, Inc.", "noreply@example.com"),
    }
    sender_from_config(config).send(make_message())
    received = recorder.only()
    addresses = received.mail.message["From"].addresses
    assert [(a.display_name, a.addr_spec) for a in addresses] == [
        ("Example, Inc.", "noreply@example.com")
    ]
    assert received.mail_from == "noreply@example.com"


def test_tls_and_ssl_together_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        sender_from_config({"MAIL_SERVER": "h", "MAIL_USE_TLS": True, "MAIL_USE_SSL": True})


@pytest.mark.parametrize("port", ["smtp", "25x", "2.5", [25], {"port": 25}])
def test_non_numeric_port_is_a_configuration_error(port: object) -> None:
    with pytest.raises(ConfigurationError, match="MAIL_PORT"):
        sender_from_config({"MAIL_SERVER": "h", "MAIL_PORT": port})


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_out_of_range_port_is_a_configuration_error(port: int) -> None:
    with pytest.raises(ConfigurationError, match="MAIL_PORT"):
        sender_from_config({"MAIL_SERVER": "h", "MAIL_PORT": port})


def test_non_numeric_timeout_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MAIL_TIMEOUT"):
        sender_from_config({"MAIL_SERVER": "h", "MAIL_TIMEOUT": "soon"})


@pytest.mark.parametrize("timeout", [0, -1])
def test_non_positive_timeout_is_a_configuration_error(timeout: int) -> None:
    with pytest.raises(ConfigurationError, match="MAIL_TIMEOUT"):
        sender_from_config({"MAIL_SERVER": "h", "MAIL_TIMEOUT": timeout})


def test_a_host_app_passes_its_own_mail_sender(tmp_path: Path) -> None:
    """Portcullis(mail_sender=...) replaces SMTP even with MAIL_SERVER set (a host's queue)."""
    sent: list[Message] = []

    class Queue:
        def send(self, message: Message) -> None:
            sent.append(message)

    app = Flask("host")
    app.config.update(
        TESTING=True,
        SECRET_KEY="host-secret-" + "h" * 32,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'host.db'}",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=free_port(),  # nothing listens: SMTP would fail
        **FAST_HASH,
    )
    portcullis = Portcullis(app, mail_sender=Queue())
    with app.app_context():
        portcullis.db.create_all()
    client = app.test_client()
    data = {
        "csrf_token": csrf_token(client, "/register"),
        "username": "grace",
        "email": "grace@example.com",
        "password": ACCOUNT_PASSWORD,
        "password_confirm": ACCOUNT_PASSWORD,
    }
    assert client.post("/register", data=data).status_code == 302
    [message] = sent
    assert message.to == "grace@example.com"
    assert "/verify-email/" in message.text
