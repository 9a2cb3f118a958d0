"""A pytest plugin for host apps: users, signed-in clients, the mail sent and TOTP codes.

Enable it in your top-level ``conftest.py``::

    pytest_plugins = ["flask_portcullis.testing"]

Its fixtures use yours called ``app`` (the pytest-flask convention): your Flask
app with Portcullis initialised and its tables created. See docs/testing.md.

PYTEST_DONT_REWRITE: a host may import this module (for its types) before
pytest loads it as a plugin; with nothing to rewrite, pytest has nothing to
warn about (a warning is an error under ``filterwarnings = error``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from .mail import Message
from .models import PORTCULLIS_COLUMNS, UserMixin
from .passwords import Argon2Hasher, PasswordHashing
from .state import get_state
from .two_factor import STEP
from .web.login_bridge import sign_in

__all__ = [
    "PASSWORD",
    "ClientFactory",
    "SentMail",
    "TotpFactory",
    "UserFactory",
    "portcullis_client",
    "portcullis_outbox",
    "portcullis_totp",
    "portcullis_user",
]

#: The password of every user ``portcullis_user`` makes without ``password=``.
PASSWORD = "tin kettle under a violet sky"

# argon2id at its minimum cost: a user costs microseconds, not the tens of milliseconds
# of the real parameters. The app's own argon2 hasher verifies any parameters (and a real
# sign-in then rehashes at the app's cost).
CHEAP_HASHER = Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1)

# An http(s) URL, without the punctuation a sentence may put after it.
LINK = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]}]")
# A username that makes a valid email address as it is.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class SentMail:
    """One mail Portcullis sent: to one address, with a text and an HTML part."""

    to: str
    subject: str
    text: str
    html: str

    @property
    def links(self) -> list[str]:
        """The http(s) URLs in the text part, in order."""
        return LINK.findall(self.text)


class _Recorder:
    """A mail sender that keeps what it is given."""

    def __init__(self, outbox: list[SentMail]) -> None:
        self.outbox = outbox

    def send(self, message: Message) -> None:
        self.outbox.append(SentMail(message.to, message.subject, message.text, message.html))


class UserFactory:
    """Store users through the account service (the ``portcullis_user`` fixture)."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._made = 0
        hashers = get_state(app).accounts.hashing.hashers
        # Only when the app verifies argon2 (not every chain of your own ``hashers`` does).
        self._cheap = (
            PasswordHashing([CHEAP_HASHER, *hashers])
            if any(isinstance(hasher, Argon2Hasher) for hasher in hashers)
            else None
        )

    def __call__(
        self,
        username: str | None = None,
        email: str | None = None,
        password: str = PASSWORD,
        *,
        roles: Sequence[str] = (),
        verified: bool = True,
        **columns: Any,
    ) -> UserMixin:
        """Store a user (registered as sign-up does, under the password policy) and return it.

        Defaults are unique even across tests that share a database. ``roles``
        are created when missing; ``columns`` are set on your user model (yours
        with the new row, Portcullis's own, such as ``active``, right after). The
        object is detached from any database session, its columns, roles and
        permissions loaded; ``user.password`` is the plain
        password (unless your model has a ``password`` attribute of its own).
        """
        self._made += 1
        tag = f"{self._made}-{secrets.token_hex(3)}"
        username = username or f"user-{tag}"
        if email is None:
            plain = _PLAIN_NAME.fullmatch(username) and username.isascii()
            email = f"{username if plain else 'user-' + tag}@example.com"
        with self._app.app_context():
            state = get_state(self._app)
            accounts = state.accounts
            unknown = [name for name in columns if not hasattr(state.models.User, name)]
            if unknown:
                raise TypeError(f"{state.models.User.__name__} has no column {unknown[0]!r}")
            # Hash cheaply for this call only: register is the service's one way in, and it
            # hashes with the chain it holds. (Users are made from the test's own thread.)
            hashing, accounts.hashing = accounts.hashing, self._cheap or accounts.hashing
            # The host's own columns go in with the row (one may be NOT NULL); Portcullis's
            # (``active=False``, say) are set after, as only a test may.
            own = {k: v for k, v in columns.items() if k not in PORTCULLIS_COLUMNS}
            try:
                user = accounts.register(username, email, password, verified=verified, extra=own)
            finally:
                accounts.hashing = hashing
            for name, value in columns.items():
                if name not in own:
                    setattr(user, name, value)
            state.db.session.commit()
            for role in roles:
                state.roles.ensure(role)
                state.roles.add_to_user(user, role)
            # Load what a test reads, before the session closes and the object detaches.
            loaded = accounts.get_with_roles(user.id)
            assert loaded is not None
            for held in loaded.roles:
                list(held.permissions)
        if not hasattr(type(loaded), "password"):
            loaded.password = password  # the kit's attribute, not a column
        return loaded


class ClientFactory:
    """Make test clients signed in through real server-side sessions (``portcullis_client``)."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __call__(self, user: UserMixin, *, remember: bool = False) -> FlaskClient:
        """Return a new test client signed in as ``user``, as after a fresh sign-in.

        The session is a real one: it is listed on the user's sessions page, and
        ending it on the server signs the client out. No sign-in is audited and
        no notice is mailed.
        """
        client = self._app.test_client()
        # The adapter's own sign_in, in a request as this client makes them (its address and
        # browser: Flask-Login compares them), then its cookie goes into the client's.
        with (
            self._app.app_context(),
            self._app.test_request_context(environ_base=client.environ_base),
        ):
            sign_in(user, remember=remember)
            cookie, permanent = dict(session), session.permanent
        with client.session_transaction() as browser:
            browser.clear()
            browser.update(cookie)
            browser.permanent = permanent
        return client


class TotpFactory:
    """Give the current TOTP code of a user (the ``portcullis_totp`` fixture)."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __call__(self, user: UserMixin) -> str:
        """Return the code the user's authenticator app shows now, or its next one when the
        current one was used already (RFC 6238 codes work once)."""
        with self._app.app_context():
            two_factor = get_state(self._app).two_factor
            code = two_factor.next_code(user)
            if code is None and not two_factor.has_totp(user):
                raise LookupError(f"{user!r} has no authenticator app: portcullis_totp.enable()")
        if code is None:
            raise LookupError(
                f"{user!r} used the current and the next code already: move the app's clock on"
            )
        return code

    def enable(self, user: UserMixin) -> list[str]:
        """Turn on two-factor sign-in with an authenticator app; return the recovery codes."""
        with self._app.app_context():
            state = get_state(self._app)
            secret = state.two_factor.begin(user).secret
            # Confirmed with the previous step's code (within the allowed drift), so the
            # current code is still unused for the test's own sign-in.
            earlier = state.clock() - timedelta(seconds=STEP)
            return state.two_factor.enable(user, secret, pyotp.TOTP(secret).at(earlier))


@pytest.fixture
def portcullis_user(app: Flask) -> UserFactory:
    """``portcullis_user(username=, email=, password=, roles=[], verified=True, **columns)``."""
    return UserFactory(app)


@pytest.fixture
def portcullis_client(app: Flask) -> ClientFactory:
    """``portcullis_client(user, remember=False)``: a test client signed in as ``user``."""
    return ClientFactory(app)


@pytest.fixture
def portcullis_outbox(app: Flask) -> Iterator[list[SentMail]]:
    """The mails sent during the test, oldest first; mail otherwise sent in the background
    is delivered before the request returns."""
    notifier = get_state(app).notifier
    outbox: list[SentMail] = []
    sender, background = notifier.sender, notifier.background_delivery
    notifier.sender, notifier.background_delivery = _Recorder(outbox), False
    try:
        yield outbox
    finally:
        notifier.sender, notifier.background_delivery = sender, background


@pytest.fixture
def portcullis_totp(app: Flask) -> TotpFactory:
    """``portcullis_totp(user)``: the user's current code; ``portcullis_totp.enable(user)``."""
    return TotpFactory(app)
