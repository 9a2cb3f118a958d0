"""The pytest kit for host apps (flask_portcullis.testing): its fixtures on the demo app, and a
host's own test suite using them, run by pytester."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import pytest
from flask import Flask

from flask_portcullis import Portcullis, get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.passwords import BcryptHasher
from flask_portcullis.testing import (
    PASSWORD,
    ClientFactory,
    SentMail,
    TotpFactory,
    UserFactory,
)

from .conftest import FakeClock, login, signed_in, submit, text
from .rows import events
from .totp import b32key, totp

# -- portcullis_user -----------------------------------------------------------------------


def test_a_user_is_stored_verified_with_its_roles(app: Flask, portcullis_user: UserFactory) -> None:
    user = portcullis_user("ada", roles=["editor", "admin"])
    assert (user.username, user.email) == ("ada", "ada@example.com")
    assert user.email_verified
    assert sorted(role.name for role in user.roles) == ["admin", "editor"]
    with app.app_context():
        stored = get_state(app).accounts.get_by_identity("ada@example.com")
        assert stored is not None
        assert stored.id == user.id
        assert stored.has_role("editor")


def test_defaults_are_unique_and_unverified_on_request(portcullis_user: UserFactory) -> None:
    first, second = portcullis_user(), portcullis_user(verified=False)
    assert first.username != second.username
    assert first.email != second.email
    assert first.email_verified
    assert not second.email_verified


def test_a_name_that_is_no_address_gets_a_made_up_one(portcullis_user: UserFactory) -> None:
    user = portcullis_user("Zoë")
    assert user.username == "Zoë"
    assert user.email.startswith("user-")


def test_the_plain_password_is_kept_and_signs_in(app: Flask, portcullis_user: UserFactory) -> None:
    default, chosen = portcullis_user(), portcullis_user(password="a password of my own")
    assert default.password == PASSWORD
    assert chosen.password == "a password of my own"
    client = app.test_client()
    assert login(client, chosen.username, "a password of my own").status_code == 302
    assert signed_in(client)


def test_hashing_is_cheap_and_a_real_sign_in_upgrades_it(
    app: Flask, portcullis_user: UserFactory
) -> None:
    user = portcullis_user()
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    login(app.test_client(), user.username, PASSWORD)
    with app.app_context():
        stored = get_state(app).accounts.get(user.id)
        assert stored is not None
        assert stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$v=19$m=64,t=1,p=1$")  # the app's


def test_an_unknown_column_is_refused_by_name(portcullis_user: UserFactory) -> None:
    with pytest.raises(TypeError, match="shoe_size"):
        portcullis_user(shoe_size=42)


class BcryptOnly(BcryptHasher):
    """A hasher chain of an app's own with no argon2 in it: bcrypt at its cheapest."""

    def hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()

    def needs_rehash(self, encoded: str) -> bool:
        return False


def test_an_app_that_verifies_no_argon2_gets_its_own_hashes(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="kit-" + "k" * 32,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'own.db'}",
    )
    bcrypt_only = Portcullis(hashers=[BcryptOnly()])
    bcrypt_only.init_app(app)
    with app.app_context():
        bcrypt_only.db.create_all()
    try:
        user = UserFactory(app)()
        assert user.password_hash is not None
        assert user.password_hash.startswith("$2b$04$")
        assert login(app.test_client(), user.username, PASSWORD).status_code == 302
    finally:
        with app.app_context():
            bcrypt_only.db.engine.dispose()


# -- portcullis_client ---------------------------------------------------------------------


def test_a_client_is_signed_in_through_a_server_side_session(
    app: Flask, portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    user = portcullis_user()
    client = portcullis_client(user)
    assert signed_in(client)
    assert user.username in text(client.get("/account"))
    with app.app_context():
        sessions = get_state(app).sessions.list_for(user.id)
        assert len(sessions) == 1
        assert not sessions[0].remember
        assert get_state(app).sessions.end_all(user.id) == 1
    assert not signed_in(client)


def test_the_session_is_fresh_and_is_the_browsers_own(
    portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    user = portcullis_user()
    client, other = portcullis_client(user), portcullis_client(user)
    assert client.get("/account/password").status_code == 200  # no re-authentication asked
    page = text(client.get("/account/sessions"))
    assert page.count("this device") == 1
    submit(client, "/logout", {})
    assert not signed_in(client)
    assert signed_in(other)


def test_remember_makes_a_persistent_cookie_and_session(
    app: Flask, portcullis_user: UserFactory, portcullis_client: ClientFactory
) -> None:
    user = portcullis_user()
    client = portcullis_client(user, remember=True)
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.expires is not None
    with app.app_context():
        (record,) = get_state(app).sessions.list_for(user.id)
        assert record.remember


def test_no_sign_in_is_audited_or_mailed(
    app: Flask,
    portcullis_user: UserFactory,
    portcullis_client: ClientFactory,
    portcullis_outbox: list[SentMail],
) -> None:
    portcullis_client(portcullis_user())
    assert portcullis_outbox == []
    assert events(app, Event.SIGN_IN) == []


# -- portcullis_outbox ---------------------------------------------------------------------


def test_background_mail_is_in_the_outbox_when_the_request_returns(
    app: Flask, portcullis_user: UserFactory, portcullis_outbox: list[SentMail]
) -> None:
    user = portcullis_user()
    client = app.test_client()
    assert submit(client, "/forgot-password", {"email": user.email}).status_code == 200
    (mail,) = portcullis_outbox
    assert mail.to == user.email
    assert mail.subject.startswith("Reset your password")
    assert "/reset-password/" in mail.html
    (link,) = mail.links
    assert urlsplit(link).path.startswith("/reset-password/")
    assert client.get(urlsplit(link).path).status_code == 200


def test_the_outbox_takes_the_senders_place_only_for_the_test(
    app: Flask, portcullis_outbox: list[SentMail]
) -> None:
    notifier = get_state(app).notifier
    assert not notifier.background_delivery
    assert type(notifier.sender).__name__ == "_Recorder"


def test_links_leave_out_the_punctuation_after_them() -> None:
    mail = SentMail(
        "a@example.com",
        "Hi",
        "Open https://example.com/a?b=1. Or (https://example.com/c), <https://x.test/d>",
        "",
    )
    assert mail.links == ["https://example.com/a?b=1", "https://example.com/c", "https://x.test/d"]


# -- portcullis_totp -----------------------------------------------------------------------


def two_factor_sign_in(app: Flask, user_name: str, code: str) -> bool:
    client = app.test_client()
    response = login(client, user_name, PASSWORD)
    assert response.headers["Location"] == "/login/two-factor"
    submit(client, "/login/two-factor", {"code": code})
    return signed_in(client)


def test_the_code_signs_in_at_the_second_step(
    app: Flask, clock: FakeClock, portcullis_user: UserFactory, portcullis_totp: TotpFactory
) -> None:
    user = portcullis_user()
    recovery_codes = portcullis_totp.enable(user)
    assert len(recovery_codes) == 10
    code = portcullis_totp(user)
    with app.app_context():
        record = get_state(app).db.session.get(get_state(app).models.TwoFactor, user.id)
        assert record is not None
        secret = get_state(app).two_factor.unseal(record.secret)
    assert secret is not None
    assert code == totp(b32key(secret), clock.now.timestamp())  # an app's code now
    assert two_factor_sign_in(app, user.username, code)


def test_a_used_code_gives_way_to_the_next_one_then_to_none(
    app: Flask, portcullis_user: UserFactory, portcullis_totp: TotpFactory
) -> None:
    user = portcullis_user()
    portcullis_totp.enable(user)
    now = portcullis_totp(user)
    assert portcullis_totp(user) == now  # asking does not use it
    assert two_factor_sign_in(app, user.username, now)
    following = portcullis_totp(user)
    assert following != now
    assert two_factor_sign_in(app, user.username, following)
    with pytest.raises(LookupError, match="move the app's clock on"):
        portcullis_totp(user)


def test_a_user_without_an_app_has_no_code(
    portcullis_user: UserFactory, portcullis_totp: TotpFactory
) -> None:
    with pytest.raises(LookupError, match="no authenticator app"):
        portcullis_totp(portcullis_user())


# -- a host's own test suite, run by pytester ----------------------------------------------

# A host app as docs/testing.md describes it: its own db and User columns, CSRF off, the
# shipped (OWASP) argon2 parameters, and the kit named in its top-level conftest.
HOST_CONFTEST = """
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_login import current_user
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_portcullis import Portcullis, UserMixin, login_required, roles_required

pytest_plugins = ["flask_portcullis.testing"]


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    display_name: Mapped[str | None] = mapped_column(default=None)


portcullis = Portcullis(db=db, user_model=User)


def create_app(database: Path) -> Flask:
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="host-secret-" + "z" * 32,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        WTF_CSRF_ENABLED=False,
    )
    db.init_app(app)
    portcullis.init_app(app)

    @app.get("/hello")
    @login_required
    def hello() -> str:
        return f"Hello, {current_user.display_name or current_user.username}!"

    @app.get("/staff")
    @roles_required("staff")
    def staff() -> str:
        return "Staff only"

    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(scope=APP_SCOPE)
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    app = create_app(tmp_path_factory.mktemp("host") / "host.db")
    yield app
    with app.app_context():
        db.engine.dispose()
"""

HOST_TESTS = """
from __future__ import annotations

from urllib.parse import urlsplit

from conftest import User, db


def test_sign_up_mails_a_link_that_verifies(app, portcullis_outbox):
    client = app.test_client()
    form = {"username": "grace", "email": "grace@example.com",
            "password": "a long enough password", "password_confirm": "a long enough password"}
    assert client.post("/register", data=form).status_code == 302
    (mail,) = portcullis_outbox
    assert mail.to == "grace@example.com"
    assert mail.subject.startswith("Confirm your email address")
    (link,) = mail.links
    assert client.post(urlsplit(link).path).status_code == 302
    with app.app_context():
        assert db.session.query(User).filter_by(username="grace").one().email_verified


def test_a_signed_in_client_sees_a_login_required_page(app, portcullis_user, portcullis_client):
    ada = portcullis_user("ada", display_name="Ada Lovelace")
    assert ada.display_name == "Ada Lovelace"
    assert portcullis_client(ada).get("/hello").get_data(as_text=True) == "Hello, Ada Lovelace!"
    assert app.test_client().get("/hello").status_code == 302


def test_roles_are_given(portcullis_user, portcullis_client):
    staff, visitor = portcullis_user(roles=["staff"]), portcullis_user()
    assert portcullis_client(staff).get("/staff").status_code == 200
    assert portcullis_client(visitor).get("/staff").status_code == 403


def test_a_totp_code_passes_the_second_step(app, portcullis_user, portcullis_totp):
    user = portcullis_user()
    portcullis_totp.enable(user)
    client = app.test_client()
    form = {"identity": user.username, "password": user.password}
    assert client.post("/login", data=form).headers["Location"] == "/login/two-factor"
    answer = client.post("/login/two-factor", data={"code": portcullis_totp(user)})
    assert answer.status_code == 302
    assert client.get("/hello").status_code == 200
"""

# Each test here is wrong about what happened: the kit must let them fail.
HOST_TESTS_THAT_FAIL = """
def test_expects_no_mail_after_a_reset_request(app, portcullis_user, portcullis_outbox):
    user = portcullis_user()
    app.test_client().post("/forgot-password", data={"email": user.email})
    assert portcullis_outbox == [], "a reset mail was sent"


def test_expects_to_be_signed_out(portcullis_user, portcullis_client):
    client = portcullis_client(portcullis_user())
    assert client.get("/hello").status_code == 302, "the client is signed in"


def test_expects_a_wrong_code_to_pass(app, portcullis_user, portcullis_totp):
    user = portcullis_user()
    portcullis_totp.enable(user)
    client = app.test_client()
    client.post("/login", data={"identity": user.username, "password": user.password})
    wrong = f"{(int(portcullis_totp(user)) + 1) % 10**6:06d}"
    client.post("/login/two-factor", data={"code": wrong})
    assert client.get("/hello").status_code == 200, "a wrong code was refused"
"""

# A host that keeps one app (and one database) for the whole run.
HOST_TESTS_SHARING_AN_APP = """
from flask_portcullis import get_state


def test_mail_is_recorded(app, portcullis_user, portcullis_outbox):
    portcullis_user(), portcullis_user()
    app.test_client().post("/forgot-password", data={"email": portcullis_user().email})
    assert len(portcullis_outbox) == 1


def test_the_app_gets_its_sender_back_and_defaults_stay_unique(app, portcullis_user):
    notifier = get_state(app).notifier
    assert notifier.background_delivery
    assert type(notifier.sender).__name__ == "ConsoleSender"
    portcullis_user(), portcullis_user()
"""


def host_suite(pytester: pytest.Pytester, tests: str, *, app_scope: str = "function") -> None:
    pytester.makeconftest(HOST_CONFTEST.replace("APP_SCOPE", repr(app_scope)))
    pytester.makepyfile(test_host=tests)
    # As strict as this suite: a warning anywhere in the host's run is an error.
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")


def test_a_host_suite_uses_every_fixture(pytester: pytest.Pytester) -> None:
    host_suite(pytester, HOST_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_a_wrong_assertion_in_a_host_test_fails(pytester: pytest.Pytester) -> None:
    host_suite(pytester, HOST_TESTS_THAT_FAIL)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: a reset mail was sent*",
            "*AssertionError: the client is signed in*",
            "*AssertionError: a wrong code was refused*",
        ]
    )


def test_a_host_app_shared_by_its_tests_is_left_as_it_was(pytester: pytest.Pytester) -> None:
    host_suite(pytester, HOST_TESTS_SHARING_AN_APP, app_scope="session")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_host_may_import_the_kit_before_naming_it(pytester: pytest.Pytester) -> None:
    # Type hints in the conftest import the module before pytest loads it as a plugin: pytest
    # then cannot rewrite it, and says so (an error under filterwarnings = error) unless the
    # module opts out of rewriting. A new process: this one imported the module long ago.
    pytester.makeconftest(
        "from flask_portcullis.testing import UserFactory\n\n"
        'pytest_plugins = ["flask_portcullis.testing"]\n'
    )
    pytester.makepyfile(test_host="def test_nothing():\n    pass\n")
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
