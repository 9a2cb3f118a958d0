"""Passkeys (WebAuthn): adding and removing them, signing in without a password, as the second
step after one and to confirm it is you, and what the other second-factor features make of them.

Every browser answer here comes from tests/soft_authenticator.py, written from the W3C spec,
never from the ``webauthn`` package the implementation uses. The test client's base URL is
http://localhost, so the relying party the pages derive is "localhost" on that origin.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import cbor2
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_portcullis import get_state
from flask_portcullis.audit_events import Event
from flask_portcullis.exceptions import FieldError, PasskeyRejected
from flask_portcullis.models import PasskeyMixin, UserMixin
from flask_portcullis.passkeys import PasskeyService, RelyingParty
from flask_portcullis.web.keys import CEREMONY

from .conftest import (
    CSRF_INPUT,
    PASSWORD,
    AppFactory,
    FakeClock,
    Mail,
    Outbox,
    csrf_token,
    deactivate,
    login,
    make_app,
    make_user,
    path_of,
    signed_in,
    submit,
)
from .rows import events, stored_passkeys
from .soft_authenticator import SoftAuthenticator, b64url
from .totp import code_for

PASSKEYS = "/account/passkeys"
RECOVERY = "/account/recovery-codes"
SECOND_STEP = "/login/two-factor"
HOME = "/"  # where the demo lands after sign-in
API = "/api/v1"
RP = RelyingParty("localhost", "Portcullis tests", ("http://localhost",))
REJECTED = "That passkey was not accepted"
EXPIRED = "That passkey request expired or was used already"
CHALLENGE_LIFETIME = 5 * 60
FRESH_WINDOW = 10 * 60
PASSKEY_FORM = re.compile(r"<form\b[^>]*\bdata-passkey-options=[^>]*>")
FLASH = re.compile(r'<p class="flash flash-(\w+)"[^>]*>([^<]*)</p>')
FORM_ERRORS = re.compile(r'<div class="form-errors"[^>]*>(.*?)</div>', re.S)
FIELD_ERRORS = re.compile(r'<ul class="errors"[^>]*>(.*?)</ul>', re.S)
LISTED = re.compile(r'<tr>\s*<td>([^<]*)</td>.*?name="passkey" value="(\d+)"', re.S)
RECOVERY_CODE = re.compile(r"<li><code>([^<]+)</code></li>")
TOTP_SECRET = re.compile(r'class="secret">([A-Z2-7]+)<')

# -- pages and forms ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A page's passkey form, as passkeys.js sees it: where it posts, its WebAuthn options
    (JSON, HTML-escaped in ``data-passkey-options``) and the page's CSRF token."""

    action: str
    options: str
    csrf_token: str

    @property
    def challenge(self) -> str:
        value = json.loads(self.options)["challenge"]
        assert isinstance(value, str)
        return value


def prompt_of(response: TestResponse, path: str) -> Prompt:
    text = response.get_data(as_text=True)
    forms = PASSKEY_FORM.findall(text)
    assert len(forms) == 1, f"expected one passkey form on {path}:\n{text}"
    action = re.search(r'\baction="([^"]*)"', forms[0])
    options = re.search(r'\bdata-passkey-options="([^"]*)"', forms[0])
    token = CSRF_INPUT.search(text)
    assert options is not None
    assert token is not None, f"no CSRF token on {path}"
    return Prompt(
        html.unescape(action.group(1)) if action else path,
        html.unescape(options.group(1)),
        token.group(1),
    )


def prompt(client: FlaskClient, path: str) -> Prompt:
    """GET ``path`` (which makes a challenge) and return its passkey form."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return prompt_of(response, path)


def offers_a_passkey(client: FlaskClient, path: str) -> bool:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return PASSKEY_FORM.search(response.get_data(as_text=True)) is not None


def post(client: FlaskClient, form: Prompt, credential: str | None, **fields: str) -> TestResponse:
    """Submit the form the way passkeys.js does: the answer in the hidden ``credential``."""
    data = {"csrf_token": form.csrf_token, **fields}
    if credential is not None:
        data["credential"] = credential
    return client.post(form.action, data=data)


def add_passkey(
    client: FlaskClient, key: SoftAuthenticator, name: str = "Work laptop"
) -> TestResponse:
    form = prompt(client, PASSKEYS)
    return post(client, form, key.create(form.options), name=name, password=PASSWORD)


def use_passkey(
    client: FlaskClient, key: SoftAuthenticator, page: str, **fields: str
) -> TestResponse:
    """Press the passkey button of ``page``: the authenticator answers its challenge."""
    form = prompt(client, page)
    return post(client, form, key.get(form.options), **fields)


def passkey_sign_in(
    client: FlaskClient, key: SoftAuthenticator, next_url: str | None = None, **fields: str
) -> TestResponse:
    page = "/login" + (f"?{urlencode({'next': next_url})}" if next_url else "")
    return use_passkey(client, key, page, **fields)


def sign_out(client: FlaskClient) -> None:
    assert submit(client, "/logout", {}).status_code == 302
    assert not signed_in(client)


def error_messages(client: FlaskClient, response: TestResponse) -> list[str]:
    """What the user is told went wrong: error flashes and form errors on ``response``, or on
    the page it redirects to."""
    assert response.status_code in (302, 303) or 400 <= response.status_code < 500, (
        response.status_code
    )
    if response.status_code in (302, 303):
        response = client.get(response.headers["Location"])
    text = response.get_data(as_text=True)
    found = [message for category, message in FLASH.findall(text) if category == "error"]
    for block in FORM_ERRORS.findall(text) + FIELD_ERRORS.findall(text):
        found += re.findall(r"<(?:p|li)>([^<]*)</(?:p|li)>", block)
    return [html.unescape(message).strip() for message in found]


def notices(client: FlaskClient, response: TestResponse) -> list[str]:
    """Every flash message on the page ``response`` redirects to."""
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return [html.unescape(message) for _, message in FLASH.findall(page)]


def recovery_codes_of(response: TestResponse) -> list[str]:
    assert response.status_code == 200, response.status_code
    return [html.unescape(c) for c in RECOVERY_CODE.findall(response.get_data(as_text=True))]


def listed(client: FlaskClient) -> dict[str, int]:
    """The passkeys on the page: name -> id."""
    page = client.get(PASSKEYS)
    assert page.status_code == 200
    return {html.unescape(name): int(i) for name, i in LISTED.findall(page.get_data(as_text=True))}


def remove_passkey(client: FlaskClient, passkey_id: int) -> TestResponse:
    token = csrf_token(client, PASSKEYS)
    data = {"csrf_token": token, "action": "remove", "passkey": str(passkey_id)}
    return client.post(PASSKEYS, data=data)


@dataclass(frozen=True)
class Enrolled:
    key: SoftAuthenticator
    recovery_codes: list[str]


def give_passkey(app: Flask, user_id: int, key: SoftAuthenticator | None = None) -> Enrolled:
    """Register a passkey for the user through the service and issue the recovery codes the
    page would: set-up for the tests below that are not about adding one."""
    key = key or SoftAuthenticator()
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(user_id)
        assert user is not None
        ceremony = state.passkeys.registration_options(user, RP)
        credential = key.create(ceremony.options)
        state.passkeys.register(user, RP, credential, ceremony.challenge, "Key")
        codes = state.two_factor.ensure_recovery_codes(user)
    return Enrolled(key, codes)


@pytest.fixture
def enrolled(app: Flask, user: int) -> Enrolled:
    """ada has one passkey, ten recovery codes and no authenticator app; she is signed out."""
    return give_passkey(app, user)


def mail_saying(outbox: Outbox, address: str, words: str) -> Mail:
    """The one mail to ``address`` whose text has ``words`` (waiting a moment for it)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [m for m in outbox.to(address) if words in m.text]
        if found:
            assert len(found) == 1, [m.text for m in found]
            return found[0]
        time.sleep(0.02)
    subjects = [m.subject for m in outbox.to(address)]
    raise AssertionError(f"no mail to {address} says {words!r}; got {subjects}")


# -- the service, on its own -------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, site_clock: FakeClock) -> Iterator[Flask]:
    """One app for the tests that only read or add rows of their own (users of their own)."""
    app = make_app(Path(tmp_path_factory.mktemp("passkeys")), site_clock)
    yield app
    with app.app_context():
        get_state(app).db.engine.dispose()


NUMBERS = itertools.count(1)


@dataclass
class Bench:
    """The passkey service in an app context, with two new users and the localhost party."""

    passkeys: PasskeyService
    ada: UserMixin
    bob: UserMixin

    def enrol(
        self,
        user: UserMixin | None = None,
        key: SoftAuthenticator | None = None,
        name: str = "Laptop",
    ) -> tuple[SoftAuthenticator, PasskeyMixin]:
        user, key = user or self.ada, key or SoftAuthenticator()
        ceremony = self.passkeys.registration_options(user, RP)
        credential = key.create(ceremony.options)
        return key, self.passkeys.register(user, RP, credential, ceremony.challenge, name)

    def sign_in(
        self,
        key: SoftAuthenticator,
        user: UserMixin | None = None,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verify_user: bool | None = None,
    ) -> tuple[UserMixin, PasskeyMixin]:
        """A whole sign-in ceremony; ``user`` None is passwordless, else a second factor
        (which needs no user verification unless ``verify_user`` says so)."""
        verify = user is None if verify_user is None else verify_user
        ceremony = self.passkeys.authentication_options(RP, user, verify_user=verify)
        answer = key.get(ceremony.options, origin=origin, rp_id=rp_id)
        return self.passkeys.authenticate(RP, answer, ceremony.challenge, user, verify_user=verify)


@pytest.fixture
def bench(site: Flask) -> Iterator[Bench]:
    n = next(NUMBERS)
    ada = make_user(site, f"ada{n}", f"ada{n}@example.com")
    bob = make_user(site, f"bob{n}", f"bob{n}@example.com")
    with site.app_context():
        state = get_state(site)
        users = state.accounts.get(ada), state.accounts.get(bob)
        assert users[0] is not None
        assert users[1] is not None
        yield Bench(state.passkeys, users[0], users[1])


def test_a_passkey_signs_its_owner_in_and_its_use_is_recorded(
    bench: Bench, site_clock: FakeClock
) -> None:
    key, passkey = bench.enrol()
    assert passkey.sign_count == 0
    assert passkey.last_used_at is None
    for count in (1, 2):
        site_clock.advance(minutes=3)
        owner, used = bench.sign_in(key)
        assert owner.id == bench.ada.id
        assert used.id == passkey.id
        assert used.sign_count == count
        assert used.last_used_at == site_clock.now
    [listed_key] = bench.passkeys.list_for(bench.ada)
    assert (listed_key.sign_count, listed_key.last_used_at) == (2, site_clock.now)


def test_only_the_public_key_is_stored(bench: Bench) -> None:
    key, passkey = bench.enrol()
    cose = cbor2.loads(passkey.public_key)
    numbers = key.key.public_key().public_numbers()
    assert cose[-2] == numbers.x.to_bytes(32, "big")
    assert cose[-3] == numbers.y.to_bytes(32, "big")
    assert -4 not in cose  # COSE "d": the private key
    private = key.key.private_numbers().private_value.to_bytes(32, "big")
    assert private not in passkey.public_key


def test_a_replayed_sign_in_answer_is_refused(bench: Bench) -> None:
    key, _ = bench.enrol()
    ceremony = bench.passkeys.authentication_options(RP)
    answer = key.get(ceremony.options)
    bench.passkeys.authenticate(RP, answer, ceremony.challenge)
    with pytest.raises(PasskeyRejected):
        bench.passkeys.authenticate(RP, answer, ceremony.challenge)


@pytest.mark.parametrize("clone_counter", [0, 1, 2])
def test_a_cloned_key_whose_counter_is_behind_is_refused(bench: Bench, clone_counter: int) -> None:
    key, _ = bench.enrol()
    for _ in range(3):
        bench.sign_in(key)
    # The same private key and credential id, with a counter at or below the original's 3.
    clone = SoftAuthenticator(
        key=key.key,
        credential_id=key.credential_id,
        user_handle=key.user_handle,
        rp_id=key.rp_id,
        counter=clone_counter,
    )
    with pytest.raises(PasskeyRejected):
        bench.sign_in(clone)
    [passkey] = bench.passkeys.list_for(bench.ada)
    assert passkey.sign_count == 3
    bench.sign_in(key)  # the original goes on working


def test_a_synced_passkey_without_a_counter_is_accepted_every_time(
    bench: Bench, site_clock: FakeClock
) -> None:
    key, _ = bench.enrol(key=SoftAuthenticator(counts=False))
    for _ in range(3):
        site_clock.advance(seconds=10)
        owner, passkey = bench.sign_in(key)
        assert owner.id == bench.ada.id
        assert passkey.sign_count == 0
        assert passkey.last_used_at == site_clock.now


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://localhost:8080",
        "https://localhost",
        "null",
    ],
)
def test_an_answer_given_on_another_origin_is_refused(bench: Bench, origin: str) -> None:
    """A phishing page gets the browser to sign its own origin into the client data."""
    key, _ = bench.enrol()
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key, origin=origin)
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key, bench.ada, origin=origin)
    bench.sign_in(key)


@pytest.mark.parametrize("rp_id", ["evil.example", "example.com", "localhost.evil.example"])
def test_an_answer_made_for_another_site_is_refused(bench: Bench, rp_id: str) -> None:
    key, _ = bench.enrol()
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key, rp_id=rp_id)
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key, bench.ada, rp_id=rp_id)
    bench.sign_in(key)


def test_an_answer_to_another_challenge_is_refused(bench: Bench) -> None:
    key, _ = bench.enrol()
    asked = bench.passkeys.authentication_options(RP)
    other = bench.passkeys.authentication_options(RP)
    answer = key.get(asked.options)
    with pytest.raises(PasskeyRejected):
        bench.passkeys.authenticate(RP, answer, other.challenge)
    owner, _ = bench.passkeys.authenticate(RP, answer, asked.challenge)
    assert owner.id == bench.ada.id


def test_a_new_passkey_answering_another_challenge_is_refused(bench: Bench) -> None:
    asked = bench.passkeys.registration_options(bench.ada, RP)
    other = bench.passkeys.registration_options(bench.ada, RP)
    credential = SoftAuthenticator().create(asked.options)
    with pytest.raises(PasskeyRejected):
        bench.passkeys.register(bench.ada, RP, credential, other.challenge, "Laptop")
    assert bench.passkeys.list_for(bench.ada) == []


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:8080"])
def test_a_new_passkey_made_on_another_origin_is_refused(bench: Bench, origin: str) -> None:
    ceremony = bench.passkeys.registration_options(bench.ada, RP)
    credential = SoftAuthenticator().create(ceremony.options, origin=origin)
    with pytest.raises(PasskeyRejected):
        bench.passkeys.register(bench.ada, RP, credential, ceremony.challenge, "Laptop")
    assert bench.passkeys.list_for(bench.ada) == []


def test_without_a_password_the_device_must_verify_the_person(bench: Bench) -> None:
    """A key with no PIN or biometrics proves possession only: enough after a password."""
    key, _ = bench.enrol(key=SoftAuthenticator(verifies_user=False))
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key)
    owner, _ = bench.sign_in(key, bench.ada)
    assert owner.id == bench.ada.id
    # Standing in for the password (re-authentication), it must verify the person too.
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key, bench.ada, verify_user=True)


def test_without_a_user_handle_a_passwordless_answer_is_refused(bench: Bench) -> None:
    """WebAuthn 7.2 step 6: with no list of allowed passkeys, the answer must name its owner."""
    key, _ = bench.enrol()
    key.user_handle = None
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key)
    owner, _ = bench.sign_in(key, bench.ada)  # after the password the owner is known
    assert owner.id == bench.ada.id


def test_another_users_passkey_is_not_a_second_factor(bench: Bench) -> None:
    bobs, _ = bench.enrol(bench.bob)
    with pytest.raises(PasskeyRejected):
        bench.sign_in(bobs, bench.ada)
    owner, _ = bench.sign_in(bobs, bench.bob)
    assert owner.id == bench.bob.id


def test_an_answer_naming_another_account_is_refused(bench: Bench) -> None:
    adas, _ = bench.enrol()
    bobs, _ = bench.enrol(bench.bob)
    adas.user_handle = bobs.user_handle  # ada's key claims to be bob's
    with pytest.raises(PasskeyRejected):
        bench.sign_in(adas)


def test_a_removed_passkey_is_refused(bench: Bench) -> None:
    key, passkey = bench.enrol()
    removed = bench.passkeys.remove(bench.ada, passkey.id)
    assert removed is not None
    assert removed.name == "Laptop"
    assert bench.passkeys.list_for(bench.ada) == []
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key)
    with pytest.raises(PasskeyRejected):
        bench.sign_in(key, bench.ada)


def test_no_one_removes_another_users_passkey(bench: Bench) -> None:
    key, passkey = bench.enrol()
    assert bench.passkeys.remove(bench.bob, passkey.id) is None
    assert [p.id for p in bench.passkeys.list_for(bench.ada)] == [passkey.id]
    bench.sign_in(key)


@pytest.mark.parametrize("again_for", ["ada", "bob"])
def test_a_passkey_is_registered_once(bench: Bench, again_for: str) -> None:
    key, _ = bench.enrol()
    with pytest.raises(PasskeyRejected, match="registered already"):
        bench.enrol(getattr(bench, again_for), key, "Again")
    assert len(bench.passkeys.list_for(bench.ada)) == 1
    assert bench.passkeys.list_for(bench.bob) == []


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 65, "nul\x00byte", "bell\x07", "escape\x1b[31m", "del\x7f"],
    ids=["empty", "blank", "65-characters", "nul", "bell", "escape", "delete"],
)
def test_a_passkey_name_is_1_to_64_printable_characters(bench: Bench, name: str) -> None:
    with pytest.raises(FieldError) as caught:
        bench.enrol(name=name)
    assert caught.value.field == "name"
    assert "1 to 64 characters" in caught.value.message
    assert bench.passkeys.list_for(bench.ada) == []


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("x" * 64, "x" * 64),
        ("  Work \t laptop  ", "Work laptop"),
        ("\U0001f511 YubiKey 5C", "\U0001f511 YubiKey 5C"),
        ("Ada's <key>", "Ada's <key>"),
    ],
)
def test_a_passkey_name_is_kept_with_its_spaces_tidied(bench: Bench, name: str, kept: str) -> None:
    _, passkey = bench.enrol(name=name)
    assert passkey.name == kept


def test_registration_asks_for_a_discoverable_passkey_and_leaves_out_known_ones(
    bench: Bench,
) -> None:
    first, _ = bench.enrol()
    second, _ = bench.enrol()
    bench.enrol(bench.bob)
    options = json.loads(bench.passkeys.registration_options(bench.ada, RP).options)
    assert options["rp"]["id"] == "localhost"
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required"  # usable without a username
    assert selection["requireResidentKey"] is True  # the WebAuthn level 1 spelling
    excluded = sorted(c["id"] for c in options["excludeCredentials"])
    assert excluded == sorted(b64url(k.credential_id) for k in (first, second))
    # The user handle is the account id: no name or address inside the authenticator's handle.
    assert options["user"]["id"] == b64url(str(bench.ada.id).encode())
    assert options["user"]["name"] == bench.ada.username
    assert bench.ada.email not in json.dumps(options)


def test_sign_in_options_passwordless_and_as_a_second_factor(bench: Bench) -> None:
    adas, _ = bench.enrol()
    bench.enrol(bench.bob)
    passwordless = json.loads(bench.passkeys.authentication_options(RP).options)
    assert passwordless["rpId"] == "localhost"
    assert passwordless["userVerification"] == "required"
    assert passwordless["allowCredentials"] == []  # the browser offers any of its passkeys
    second = json.loads(bench.passkeys.authentication_options(RP, bench.ada).options)
    assert [c["id"] for c in second["allowCredentials"]] == [b64url(adas.credential_id)]
    # WebAuthn 13.4.3: at least 16 random bytes, new every time.
    challenges = {
        json.loads(bench.passkeys.authentication_options(RP).options)["challenge"] for _ in range(5)
    }
    assert len(challenges) == 5
    assert all(len(c) >= 22 for c in challenges)  # 16 bytes in base64url


# -- garbage in --------------------------------------------------------------------------------

JUNK = [
    pytest.param("", id="empty"),
    pytest.param("{}", id="empty-object"),
    pytest.param("[]", id="array"),
    pytest.param("null", id="null"),
    pytest.param('"public-key"', id="string"),
    pytest.param("not json", id="not-json"),
    pytest.param("x" * 20_000, id="20KB"),
    pytest.param(json.dumps({"padding": "x" * 20_000}), id="20KB-object"),
    pytest.param(
        json.dumps({"id": 1, "rawId": ["x"], "type": "public-key", "response": "x"}),
        id="wrong-types",
    ),
    pytest.param("[" * 1000 + "]" * 1000, id="deeply-nested"),
]


def changed(answer: dict[str, Any], **response: Any) -> dict[str, Any]:
    return {**answer, "response": {**answer["response"], **response}}


def cut(field: str, keep: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda a: changed(a, **{field: a["response"][field][:keep]})


def altered_authenticator_data(answer: dict[str, Any]) -> dict[str, Any]:
    """Raise the signed counter without signing again: the signature no longer fits."""
    data = bytearray(base64.urlsafe_b64decode(answer["response"]["authenticatorData"] + "=="))
    data[-1] ^= 0x40
    return changed(answer, authenticatorData=b64url(bytes(data)))


def unknown_id(answer: dict[str, Any]) -> dict[str, Any]:
    other = b64url(secrets.token_bytes(32))
    return {**answer, "id": other, "rawId": other}


SIGN_IN_DAMAGE = [
    pytest.param(cut("signature", -4), id="signature-cut"),
    pytest.param(lambda a: changed(a, signature="!!!"), id="signature-not-base64"),
    pytest.param(altered_authenticator_data, id="authenticator-data-altered"),
    pytest.param(cut("authenticatorData", 20), id="authenticator-data-cut"),
    pytest.param(cut("clientDataJSON", -2), id="client-data-cut"),
    pytest.param(lambda a: changed(a, clientDataJSON=b64url(b"[]")), id="client-data-array"),
    pytest.param(lambda a: changed(a, userHandle=5), id="user-handle-a-number"),
    pytest.param(lambda a: {**a, "response": "x"}, id="response-a-string"),
    pytest.param(lambda a: {**a, "type": "password"}, id="type-password"),
    pytest.param(unknown_id, id="unknown-credential"),
]
REGISTRATION_DAMAGE = [
    pytest.param(cut("attestationObject", -8), id="attestation-cut"),
    pytest.param(lambda a: changed(a, attestationObject="AAAA"), id="attestation-junk"),
    pytest.param(lambda a: changed(a, attestationObject=5), id="attestation-a-number"),
    pytest.param(lambda a: changed(a, attestationObject=b64url(cbor2.dumps([]))), id="cbor-list"),
    pytest.param(cut("clientDataJSON", -2), id="client-data-cut"),
    pytest.param(lambda a: {**a, "response": []}, id="response-a-list"),
    pytest.param(lambda a: {**a, "type": "password"}, id="type-password"),
]


@pytest.mark.parametrize("junk", JUNK)
def test_junk_is_refused_as_a_sign_in_answer(bench: Bench, junk: str) -> None:
    bench.enrol()
    for user in (None, bench.ada):
        ceremony = bench.passkeys.authentication_options(RP, user)
        with pytest.raises(PasskeyRejected):
            bench.passkeys.authenticate(RP, junk, ceremony.challenge, user)


@pytest.mark.parametrize("junk", JUNK)
def test_junk_is_refused_as_a_new_passkey(bench: Bench, junk: str) -> None:
    ceremony = bench.passkeys.registration_options(bench.ada, RP)
    with pytest.raises(PasskeyRejected):
        bench.passkeys.register(bench.ada, RP, junk, ceremony.challenge, "Laptop")
    assert bench.passkeys.list_for(bench.ada) == []


@pytest.mark.parametrize("damage", SIGN_IN_DAMAGE)
def test_a_damaged_sign_in_answer_is_refused(
    bench: Bench, damage: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    key, _ = bench.enrol()
    ceremony = bench.passkeys.authentication_options(RP)
    answer = json.loads(key.get(ceremony.options))
    with pytest.raises(PasskeyRejected):
        bench.passkeys.authenticate(RP, json.dumps(damage(answer)), ceremony.challenge)
    owner, _ = bench.passkeys.authenticate(RP, json.dumps(answer), ceremony.challenge)
    assert owner.id == bench.ada.id  # undamaged, the same answer is fine


@pytest.mark.parametrize("damage", REGISTRATION_DAMAGE)
def test_a_damaged_new_passkey_is_refused(
    bench: Bench, damage: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    ceremony = bench.passkeys.registration_options(bench.ada, RP)
    credential = json.loads(SoftAuthenticator().create(ceremony.options))
    with pytest.raises(PasskeyRejected):
        bench.passkeys.register(
            bench.ada, RP, json.dumps(damage(credential)), ceremony.challenge, "Laptop"
        )
    assert bench.passkeys.list_for(bench.ada) == []
    bench.passkeys.register(bench.ada, RP, json.dumps(credential), ceremony.challenge, "Laptop")


def test_an_answer_of_the_other_ceremony_is_refused(bench: Bench) -> None:
    key = SoftAuthenticator()
    creating = bench.passkeys.registration_options(bench.ada, RP)
    registration = key.create(creating.options)
    assertion = key.get(creating.options)  # "webauthn.get" data for the registration challenge
    with pytest.raises(PasskeyRejected):
        bench.passkeys.register(bench.ada, RP, assertion, creating.challenge, "Laptop")
    bench.passkeys.register(bench.ada, RP, registration, creating.challenge, "Laptop")
    signing = bench.passkeys.authentication_options(RP)
    for_signing = {
        **json.loads(creating.options),
        "challenge": json.loads(signing.options)["challenge"],
    }
    with pytest.raises(PasskeyRejected):
        bench.passkeys.authenticate(RP, key.create(json.dumps(for_signing)), signing.challenge)
    bench.passkeys.authenticate(RP, key.get(signing.options), signing.challenge)


# -- adding and removing on the page -----------------------------------------------------------


def test_the_first_passkey_comes_with_ten_recovery_codes_and_is_listed(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    form = prompt(auth_client, PASSKEYS)
    options = json.loads(form.options)
    assert options["rp"] == {"id": "localhost", "name": get_state(app).settings.site_name}
    assert form.action == PASSKEYS
    response = post(
        auth_client,
        form,
        SoftAuthenticator().create(form.options),
        name="Work laptop",
        password=PASSWORD,
    )
    codes = recovery_codes_of(response)
    assert len(set(codes)) == 10
    assert stored_passkeys(app, user) == (1, 10)
    page = auth_client.get(PASSKEYS).get_data(as_text=True)
    assert "<td>Work laptop</td>" in page
    assert "10 unused recovery codes left" in page
    assert not any(code in page for code in codes)  # shown once
    # A second passkey keeps the codes: no new set, back to the list.
    second = add_passkey(auth_client, SoftAuthenticator(), "Ada's <key>")
    assert path_of(second) == PASSKEYS
    assert "Passkey “Ada's <key>” added." in notices(auth_client, second)
    assert list(listed(auth_client)) == ["Work laptop", "Ada's <key>"]
    assert "<td>Ada&#39;s &lt;key&gt;</td>" in auth_client.get(PASSKEYS).get_data(as_text=True)
    assert stored_passkeys(app, user) == (2, 10)


def test_a_passkey_already_on_the_account_is_left_out_and_refused(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    key = SoftAuthenticator()
    recovery_codes_of(add_passkey(auth_client, key))
    form = prompt(auth_client, PASSKEYS)
    excluded = [c["id"] for c in json.loads(form.options)["excludeCredentials"]]
    assert excluded == [b64url(key.credential_id)]
    again = post(auth_client, form, key.create(form.options), name="Again", password=PASSWORD)
    assert again.status_code == 422
    assert "That passkey is registered already." in error_messages(auth_client, again)
    assert stored_passkeys(app, user) == (1, 10)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the passkey a name."), ("x" * 65, "Too long."), ("bell\x07", "1 to 64 characters")],
)
def test_a_bad_name_is_shown_next_to_the_field_and_nothing_is_added(
    app: Flask, auth_client: FlaskClient, user: int, name: str, message: str
) -> None:
    response = add_passkey(auth_client, SoftAuthenticator(), name)
    assert response.status_code == 422
    assert any(message in m for m in error_messages(auth_client, response)), response.get_data(
        as_text=True
    )
    assert stored_passkeys(app, user) == (0, 0)
    # The page offers a new challenge: trying again with a good name works.
    retry = prompt_of(response, PASSKEYS)
    good = post(
        auth_client,
        retry,
        SoftAuthenticator().create(retry.options),
        name="Laptop",
        password=PASSWORD,
    )
    assert len(recovery_codes_of(good)) == 10


def test_adding_and_removing_a_passkey_is_mailed_and_audited(
    app: Flask, auth_client: FlaskClient, outbox: Outbox, user: int
) -> None:
    recovery_codes_of(add_passkey(auth_client, SoftAuthenticator(), "Work laptop"))
    added = mail_saying(outbox, "ada@example.com", "A passkey named “Work laptop” was added.")
    assert "reset it now" in added.text
    assert [who for who, _ in events(app, Event.PASSKEY_ADDED)] == [user]

    response = remove_passkey(auth_client, listed(auth_client)["Work laptop"])
    assert path_of(response) == PASSKEYS
    assert "Passkey “Work laptop” removed." in notices(auth_client, response)
    mail_saying(outbox, "ada@example.com", "The passkey named “Work laptop” was removed.")
    assert [who for who, _ in events(app, Event.PASSKEY_REMOVED)] == [user]
    assert listed(auth_client) == {}


def test_the_audit_trail_names_the_passkey(app: Flask, auth_client: FlaskClient, user: int) -> None:
    recovery_codes_of(add_passkey(auth_client, SoftAuthenticator(), "Work laptop"))
    remove_passkey(auth_client, listed(auth_client)["Work laptop"])
    assert events(app, Event.PASSKEY_ADDED) == [(user, {"name": "Work laptop"})]
    assert events(app, Event.PASSKEY_REMOVED) == [(user, {"name": "Work laptop"})]


def test_no_one_removes_another_users_passkey_on_the_page(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    make_user(app, "bob", "bob@example.com")
    with app.app_context():
        state = get_state(app)
        ada = state.accounts.get(user)
        assert ada is not None
        [adas] = state.passkeys.list_for(ada)
        adas_id = adas.id
    bob = app.test_client()
    assert path_of(login(bob, "bob")) == HOME
    response = remove_passkey(bob, adas_id)
    assert path_of(response) == PASSKEYS
    assert stored_passkeys(app, user) == (1, 10)
    assert events(app, Event.PASSKEY_REMOVED) == []
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME


def test_the_passkey_page_wants_a_recent_sign_in(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    recovery_codes_of(add_passkey(auth_client, SoftAuthenticator()))
    token = csrf_token(auth_client, PASSKEYS)
    clock.advance(seconds=FRESH_WINDOW - 60)
    assert auth_client.get(PASSKEYS).status_code == 200
    clock.advance(seconds=120)
    stale = auth_client.get(PASSKEYS)
    assert stale.status_code == 302
    assert stale.headers["Location"] == "/reauthenticate?next=/account/passkeys"
    # Removing is refused too, and nothing goes.
    data = {"csrf_token": token, "action": "remove", "passkey": "1"}
    assert auth_client.post(PASSKEYS, data=data).headers["Location"] == stale.headers["Location"]
    add = {"csrf_token": token, "name": "Sneaky", "credential": "{}"}
    assert auth_client.post(PASSKEYS, data=add).headers["Location"] == stale.headers["Location"]
    renew = {"csrf_token": token}
    assert auth_client.post(RECOVERY, data=renew).headers["Location"] == (
        "/reauthenticate?next=/account/recovery-codes"
    )
    assert stored_passkeys(app, user) == (1, 10)
    back = submit(auth_client, stale.headers["Location"], {"password": PASSWORD})
    assert back.headers["Location"] == PASSKEYS
    assert list(listed(auth_client)) == ["Work laptop"]


def test_a_passkey_only_account_makes_new_recovery_codes_on_the_recovery_codes_page(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    page = client.get(PASSKEYS).get_data(as_text=True)
    assert "10 unused recovery codes left" in page
    assert f'<a href="{RECOVERY}">Make new recovery codes</a>' in page
    assert 'value="regenerate"' not in page
    response = submit(client, RECOVERY, {})
    new = recovery_codes_of(response)
    assert len(set(new)) == 10
    assert not set(new) & set(enrolled.recovery_codes)
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == [(user, {})]
    assert stored_passkeys(app, user) == (1, 10)
    sign_out(client)
    assert path_of(login(client)) == SECOND_STEP
    assert submit(client, SECOND_STEP, {"code": enrolled.recovery_codes[0]}).status_code == 422
    assert path_of(submit(client, SECOND_STEP, {"code": new[0]})) == HOME


def test_the_passkey_pages_old_regenerate_button_goes_to_the_recovery_codes_page(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    token = csrf_token(client, PASSKEYS)
    response = client.post(PASSKEYS, data={"csrf_token": token, "action": "regenerate"})
    assert response.status_code == 303
    assert response.headers["Location"] == RECOVERY
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == []
    assert stored_passkeys(app, user) == (1, 10)


# -- signing in without a password ---------------------------------------------------------------


def test_a_passkey_signs_in_without_a_password(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    form = prompt(client, "/login")
    assert form.action == "/login/passkey"
    assert json.loads(form.options)["rpId"] == "localhost"
    response = post(client, form, enrolled.key.get(form.options))
    assert path_of(response) == HOME
    assert "Signed in as ada." in notices(client, response)
    assert client.get_cookie("session") is not None
    assert signed_in(client)
    assert events(app, Event.SIGN_IN)[-1] == (user, {"remember": False, "factor": "passkey"})
    with app.app_context():
        assert len(get_state(app).sessions.list_for(user)) == 1
    # A passwordless sign-in counts as fresh: the passkey page opens at once.
    assert client.get(PASSKEYS).status_code == 200


@pytest.mark.parametrize(
    ("next_url", "lands_on"),
    [
        ("/account/sessions", "/account/sessions"),
        ("https://evil.example/", HOME),
        ("//evil.example/x", HOME),
        ("/\\evil.example", HOME),
    ],
)
def test_passkey_sign_in_goes_on_to_a_safe_next_only(
    client: FlaskClient, enrolled: Enrolled, next_url: str, lands_on: str
) -> None:
    response = passkey_sign_in(client, enrolled.key, next_url)
    assert response.headers["Location"] == lands_on
    assert signed_in(client)


@pytest.mark.parametrize("remember", [True, False])
def test_passkey_sign_in_keeps_me_signed_in_only_when_asked(
    client: FlaskClient, enrolled: Enrolled, remember: bool
) -> None:
    fields = {"remember": "y"} if remember else {}
    assert path_of(passkey_sign_in(client, enrolled.key, **fields)) == HOME
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert (cookie.expires is not None) is remember


def test_a_used_sign_in_answer_cannot_be_replayed(
    app: Flask, client: FlaskClient, user: int
) -> None:
    """Even from a synced passkey, whose counter (always 0) cannot tell a replay."""
    key = give_passkey(app, user, SoftAuthenticator(counts=False)).key
    form = prompt(client, "/login")
    answer = key.get(form.options)
    assert path_of(post(client, form, answer)) == HOME
    sign_out(client)
    # The same browser sends it again: the challenge was used up.
    again = client.post(
        form.action, data={"csrf_token": csrf_token(client, "/login"), "credential": answer}
    )
    assert path_of(again) == "/login"
    assert not signed_in(client)
    # Someone who copied it sends it from another browser, with a challenge of their own.
    thief = app.test_client()
    stolen = post(thief, prompt(thief, "/login"), answer)
    assert path_of(stolen) == "/login"
    assert any(REJECTED in m for m in error_messages(thief, stolen))
    assert not signed_in(thief)


@pytest.mark.parametrize(
    "counts",
    [pytest.param(True, id="counting"), pytest.param(False, id="synced")],
)
def test_a_captured_sign_in_request_cannot_be_replayed(
    app: Flask, clock: FakeClock, user: int, counts: bool
) -> None:
    """The whole request again, cookie included, as a proxy log or a malicious extension has it."""
    key = give_passkey(app, user, SoftAuthenticator(counts=counts)).key
    victim = app.test_client()
    form = prompt(victim, "/login")
    cookie = victim.get_cookie("session")
    assert cookie is not None
    answer = key.get(form.options)
    assert path_of(post(victim, form, answer)) == HOME
    clock.advance(seconds=30)
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    replay = post(thief, form, answer)
    assert path_of(replay) == "/login"
    assert not signed_in(thief)


@pytest.mark.parametrize(
    ("waited", "accepted"), [(CHALLENGE_LIFETIME - 1, True), (CHALLENGE_LIFETIME + 1, False)]
)
def test_a_sign_in_challenge_lasts_five_minutes(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled, waited: int, accepted: bool
) -> None:
    form = prompt(client, "/login")
    clock.advance(seconds=waited)
    response = post(client, form, enrolled.key.get(form.options))
    assert signed_in(client) is accepted
    if not accepted:
        assert path_of(response) == "/login"
        assert any(EXPIRED in m for m in error_messages(client, response))
        assert path_of(passkey_sign_in(client, enrolled.key)) == HOME  # a new one works


def test_a_challenge_to_add_a_passkey_lasts_five_minutes(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    form = prompt(auth_client, PASSKEYS)
    clock.advance(seconds=CHALLENGE_LIFETIME + 1)  # still within the fresh sign-in window
    late = post(
        auth_client,
        form,
        SoftAuthenticator().create(form.options),
        name="Laptop",
        password=PASSWORD,
    )
    assert late.status_code == 422
    assert any(EXPIRED in m for m in error_messages(auth_client, late))
    assert stored_passkeys(app, user) == (0, 0)


def test_a_deactivated_account_cannot_sign_in_with_a_passkey(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    deactivate(app, user)
    response = passkey_sign_in(client, enrolled.key)
    assert path_of(response) == "/login"
    assert any("cannot sign in" in m for m in error_messages(client, response))
    assert not signed_in(client)
    assert events(app, Event.SIGN_IN_FAILED)[-1] == (user, {"reason": "inactive"})


@pytest.mark.parametrize("verified", [False, True])
def test_with_confirmation_required_an_unconfirmed_address_cannot_sign_in_with_a_passkey(
    make_demo_app: AppFactory, clock: FakeClock, verified: bool
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_EMAIL_VERIFICATION="required")
    # Set up through the service: an unconfirmed user cannot sign in to add one on the page
    # (and an address can become unconfirmed after the passkey was added).
    key = give_passkey(app, make_user(app, verified=verified)).key
    client = app.test_client()
    response = passkey_sign_in(client, key)
    assert signed_in(client) is verified
    if not verified:
        assert path_of(response) == "/login"
        assert any("cannot sign in" in m for m in error_messages(client, response))


# -- a challenge serves the page it was made for --------------------------------------------------


def carry_challenge(source: FlaskClient, target: FlaskClient) -> None:
    """Put the challenge ``source``'s session holds into ``target``'s: a signed-in browser can
    never hold a login page's challenge otherwise (signing in empties the session)."""
    with source.session_transaction() as held:
        ceremony = held[CEREMONY]
    with target.session_transaction() as session:
        session[CEREMONY] = ceremony


def test_a_login_page_challenge_cannot_confirm_it_is_you(
    app: Flask, client: FlaskClient, enrolled: Enrolled
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    reauthenticate = prompt(client, "/reauthenticate?next=/account/passkeys")
    other = app.test_client()
    login_page = prompt(other, "/login")
    carry_challenge(other, client)
    response = post(client, reauthenticate, enrolled.key.get(login_page.options))
    assert path_of(response) == "/reauthenticate"
    assert error_messages(client, response)
    # The page's own challenge works.
    own = use_passkey(client, enrolled.key, "/reauthenticate?next=/account/passkeys")
    assert own.headers["Location"] == PASSKEYS


def test_a_login_page_challenge_cannot_add_a_passkey(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    form = prompt(auth_client, PASSKEYS)
    other = app.test_client()
    login_page = prompt(other, "/login")
    carry_challenge(other, auth_client)
    swapped = {**json.loads(form.options), "challenge": login_page.challenge}
    response = post(
        auth_client,
        form,
        SoftAuthenticator().create(json.dumps(swapped)),
        name="Key",
        password=PASSWORD,
    )
    assert response.status_code == 422
    assert any(EXPIRED in m for m in error_messages(auth_client, response))
    assert stored_passkeys(app, user) == (0, 0)


def test_a_passkey_page_challenge_cannot_confirm_it_is_you(
    client: FlaskClient, enrolled: Enrolled
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    adding = prompt(client, PASSKEYS)  # a registration challenge, now in the session
    action = "/reauthenticate/passkey?next=/account/passkeys"
    form = Prompt(action, adding.options, adding.csrf_token)
    response = post(client, form, enrolled.key.get(adding.options))
    assert path_of(response) == "/reauthenticate"


def test_a_second_step_challenge_cannot_sign_in_without_a_password(
    client: FlaskClient, enrolled: Enrolled
) -> None:
    assert path_of(login(client)) == SECOND_STEP
    second = prompt(client, SECOND_STEP)
    form = Prompt("/login/passkey", second.options, second.csrf_token)
    response = post(client, form, enrolled.key.get(second.options))
    assert path_of(response) == "/login"
    assert not signed_in(client)


# -- the second step after a password ------------------------------------------------------------


def test_after_the_password_a_passkey_completes_the_sign_in(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    assert path_of(login(client, path="/login?next=/account/sessions")) == SECOND_STEP
    assert not signed_in(client)
    page = client.get(SECOND_STEP).get_data(as_text=True)
    assert "One of your recovery codes." in page
    assert "authenticator app" not in page.lower()  # ada has none
    form = prompt(client, SECOND_STEP)
    assert form.action == "/login/two-factor/passkey"
    allowed = [c["id"] for c in json.loads(form.options)["allowCredentials"]]
    assert allowed == [b64url(enrolled.key.credential_id)]
    response = post(client, form, enrolled.key.get(form.options))
    assert response.headers["Location"] == "/account/sessions"
    assert signed_in(client)
    assert events(app, Event.SIGN_IN)[-1] == (user, {"remember": False, "factor": "passkey"})
    assert path_of(client.get(SECOND_STEP)) == "/login"  # the pending sign-in is used up


def test_after_the_password_a_key_without_a_pin_is_enough(
    app: Flask, client: FlaskClient, user: int
) -> None:
    key = give_passkey(app, user, SoftAuthenticator(verifies_user=False)).key
    refused = passkey_sign_in(client, key)  # not without the password
    assert path_of(refused) == "/login"
    assert not signed_in(client)
    assert path_of(login(client)) == SECOND_STEP
    assert path_of(use_passkey(client, key, SECOND_STEP)) == HOME


def test_after_the_password_a_recovery_code_also_works(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    assert path_of(login(client)) == SECOND_STEP
    response = submit(client, SECOND_STEP, {"code": enrolled.recovery_codes[0]})
    assert path_of(response) == HOME
    assert signed_in(client)
    with app.app_context():
        ada = get_state(app).accounts.get(user)
        assert ada is not None
        assert get_state(app).two_factor.recovery_codes_left(ada) == 9


def test_another_users_passkey_cannot_complete_the_second_step(
    app: Flask, client: FlaskClient, enrolled: Enrolled
) -> None:
    bobs = give_passkey(app, make_user(app, "bob", "bob@example.com")).key
    assert path_of(login(client)) == SECOND_STEP
    response = use_passkey(client, bobs, SECOND_STEP)
    assert path_of(response) == SECOND_STEP
    assert any(REJECTED in m for m in error_messages(client, response))
    assert not signed_in(client)
    assert path_of(use_passkey(client, enrolled.key, SECOND_STEP)) == HOME


def test_removing_the_last_passkey_ends_the_second_step(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    recovery_codes_of(add_passkey(auth_client, SoftAuthenticator(), "Phone"))
    assert path_of(add_passkey(auth_client, SoftAuthenticator(), "Laptop")) == PASSKEYS
    ids = listed(auth_client)
    assert path_of(remove_passkey(auth_client, ids["Phone"])) == PASSKEYS
    assert stored_passkeys(app, user) == (1, 10)  # one passkey left: the codes stay
    assert path_of(login(app.test_client())) == SECOND_STEP
    assert path_of(remove_passkey(auth_client, ids["Laptop"])) == PASSKEYS
    assert stored_passkeys(app, user) == (0, 0)  # no second factor left: the codes go
    sign_out(auth_client)
    assert path_of(login(auth_client)) == HOME  # one step again
    assert signed_in(auth_client)


def turn_on_the_app(client: FlaskClient, clock: FakeClock) -> list[str]:
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = TOTP_SECRET.search(page)
    assert secret, page
    code = code_for(secret.group(1), clock)
    return recovery_codes_of(submit(client, "/account/two-factor", {"code": code}))


def test_turning_off_the_app_keeps_the_passkey_and_the_recovery_codes(
    app: Flask, auth_client: FlaskClient, clock: FakeClock, user: int
) -> None:
    codes = turn_on_the_app(auth_client, clock)
    key = SoftAuthenticator()
    assert path_of(add_passkey(auth_client, key)) == PASSKEYS  # the app's codes serve both
    off = submit(auth_client, "/account/two-factor", {"password": PASSWORD, "action": "disable"})
    assert path_of(off) == "/account"
    assert notices(auth_client, off) == [
        "The authenticator app was removed; your passkeys remain your second factor."
    ]
    assert stored_passkeys(app, user) == (1, 10)
    sign_out(auth_client)
    assert path_of(login(auth_client)) == SECOND_STEP
    page = auth_client.get(SECOND_STEP).get_data(as_text=True)
    assert "authenticator app" not in page.lower()
    assert path_of(submit(auth_client, SECOND_STEP, {"code": codes[0]})) == HOME
    sign_out(auth_client)
    assert path_of(login(auth_client)) == SECOND_STEP
    assert path_of(use_passkey(auth_client, key, SECOND_STEP)) == HOME


# -- confirming it is you ------------------------------------------------------------------------


def test_reauthenticate_offers_a_passkey_and_it_makes_the_sign_in_fresh(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    clock.advance(seconds=FRESH_WINDOW + 60)
    stale = client.get(PASSKEYS)
    assert stale.headers["Location"] == "/reauthenticate?next=/account/passkeys"
    form = prompt(client, stale.headers["Location"])
    assert form.action == "/reauthenticate/passkey?next=/account/passkeys"
    allowed = [c["id"] for c in json.loads(form.options)["allowCredentials"]]
    assert allowed == [b64url(enrolled.key.credential_id)]
    response = post(client, form, enrolled.key.get(form.options))
    assert response.headers["Location"] == PASSKEYS
    assert client.get(PASSKEYS).status_code == 200
    # Without a passkey, the page asks for the password only.
    make_user(app, "bob", "bob@example.com")
    bob = app.test_client()
    assert path_of(login(bob, "bob")) == HOME
    assert not offers_a_passkey(bob, "/reauthenticate?next=/account/passkeys")


def test_reauthenticating_with_a_passkey_ignores_an_unsafe_next(
    client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    clock.advance(seconds=FRESH_WINDOW + 60)
    response = use_passkey(client, enrolled.key, "/reauthenticate?next=https://evil.example/")
    assert response.headers["Location"] == "/account"
    assert client.get(PASSKEYS).status_code == 200


def test_reauthenticating_with_a_refused_passkey_stays_stale(
    app: Flask, client: FlaskClient, clock: FakeClock, enrolled: Enrolled
) -> None:
    bobs = give_passkey(app, make_user(app, "bob", "bob@example.com")).key
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    clock.advance(seconds=FRESH_WINDOW + 60)
    for key in (bobs, SoftAuthenticator(verifies_user=False)):  # not ada's; not registered
        response = use_passkey(client, key, "/reauthenticate?next=/account/passkeys")
        assert path_of(response) == "/reauthenticate"
        assert any(REJECTED in m for m in error_messages(client, response))
        assert client.get(PASSKEYS).status_code == 302


def test_a_touch_without_the_pin_does_not_stand_in_for_the_password(
    app: Flask, client: FlaskClient, clock: FakeClock, user: int
) -> None:
    """A bare security key (presence only) is a second factor, not a re-authentication."""
    key = give_passkey(app, user, SoftAuthenticator(verifies_user=False)).key
    assert path_of(login(client, "ada")) == "/login/two-factor"
    assert path_of(use_passkey(client, key, "/login/two-factor")) == HOME  # after a password
    clock.advance(seconds=FRESH_WINDOW + 60)
    response = use_passkey(client, key, "/reauthenticate?next=/account/passkeys")
    assert path_of(response) == "/reauthenticate"
    assert client.get(PASSKEYS).status_code == 302  # still asks


def test_adding_a_passkey_asks_for_the_current_password(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    form = prompt(auth_client, PASSKEYS)
    response = post(
        auth_client, form, SoftAuthenticator().create(form.options), name="Laptop", password="no"
    )
    assert response.status_code == 422
    assert "That is not your current password." in error_messages(auth_client, response)
    assert stored_passkeys(app, user) == (0, 0)
    assert events(app, Event.PASSKEY_ADDED) == []


@pytest.mark.parametrize("raw_id", ["99999999999999999999999", "-1", "1e3", "", "\u0661"])
def test_removing_a_passkey_by_a_junk_id_changes_nothing(
    app: Flask, auth_client: FlaskClient, enrolled: Enrolled, user: int, raw_id: str
) -> None:
    form = prompt(auth_client, PASSKEYS)
    response = auth_client.post(
        PASSKEYS, data={"csrf_token": form.csrf_token, "action": "remove", "passkey": raw_id}
    )
    assert path_of(response) == PASSKEYS
    assert stored_passkeys(app, user) == (1, 10)


def test_no_recovery_codes_without_a_second_factor(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    page = auth_client.get(RECOVERY).get_data(as_text=True)
    assert "Recovery codes come with a second factor" in page
    assert "Make new recovery codes" not in page
    response = submit(auth_client, RECOVERY, {})
    assert path_of(response) == RECOVERY
    assert notices(auth_client, response) == [
        "Set up an authenticator app or a passkey first: recovery codes come with it."
    ]
    assert stored_passkeys(app, user) == (0, 0)
    assert events(app, Event.RECOVERY_CODES_REGENERATED) == []


def test_the_export_lists_passkeys_without_their_keys(
    app: Flask, auth_client: FlaskClient, user: int
) -> None:
    recovery_codes_of(add_passkey(auth_client, SoftAuthenticator(), "Work laptop"))
    data = json.loads(auth_client.get("/account/export").get_data(as_text=True))
    [passkey] = data["passkeys"]
    assert passkey["name"] == "Work laptop"
    assert passkey["last_used_at"] is None
    assert set(passkey) == {"name", "created_at", "last_used_at"}


# -- the admin's reset, the JSON API, role policy, explicit relying party -------------------------


def test_the_admin_reset_removes_passkeys_too(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    assert path_of(passkey_sign_in(client, enrolled.key)) == HOME
    result = app.test_cli_runner().invoke(args=["users", "reset-two-factor", "ada"])
    assert result.exit_code == 0, result.output
    assert "passkeys removed" in result.output
    assert stored_passkeys(app, user) == (0, 0)
    assert not signed_in(client)  # signed out everywhere
    refused = passkey_sign_in(client, enrolled.key)
    assert path_of(refused) == "/login"
    assert not signed_in(client)
    assert path_of(login(client)) == HOME  # the password alone again


def test_api_sign_in_of_a_passkey_only_user_is_finished_with_a_recovery_code(
    app: Flask, client: FlaskClient, enrolled: Enrolled, user: int
) -> None:
    started = client.post(f"{API}/login", json={"identity": "ada", "password": PASSWORD})
    assert started.status_code == 202, started.get_data(as_text=True)
    body = started.get_json()
    assert set(body) == {"challenge", "expires_in", "detail"}
    assert "access_token" not in started.get_data(as_text=True)
    app_code = client.post(
        f"{API}/login/two-factor", json={"challenge": body["challenge"], "code": "123456"}
    )
    assert app_code.status_code == 401  # there is no authenticator app to match
    finished = client.post(
        f"{API}/login/two-factor",
        json={"challenge": body["challenge"], "code": enrolled.recovery_codes[0]},
    )
    assert finished.status_code == 200, finished.get_data(as_text=True)
    token = finished.get_json()["access_token"]
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["username"] == "ada"
    assert events(app, Event.SIGN_IN)[-1] == (user, {"via": "api", "factor": "recovery"})


def test_a_passkey_alone_satisfies_a_role_that_requires_two_factor(
    make_demo_app: AppFactory,
    clock: FakeClock,
) -> None:
    app = make_demo_app(clock=clock, PORTCULLIS_REQUIRE_2FA_FOR_ROLES=["admin"])
    make_user(app, roles=("admin",))
    client = app.test_client()
    assert path_of(login(client)) == HOME
    assert client.get("/admin/").headers["Location"] == "/account/two-factor"
    recovery_codes_of(add_passkey(client, SoftAuthenticator()))  # allowed while enrolling
    assert client.get("/admin/").status_code == 200
    assert client.get("/account").status_code == 200


def test_explicit_relying_party_settings_refuse_answers_made_for_localhost(
    make_demo_app: AppFactory,
    clock: FakeClock,
) -> None:
    app = make_demo_app(
        clock=clock,
        PORTCULLIS_WEBAUTHN_RP_ID="example.com",
        PORTCULLIS_WEBAUTHN_ORIGINS=["https://example.com"],
    )
    user = make_user(app)
    client = app.test_client()  # still http://localhost: the settings win over the request
    assert path_of(login(client)) == HOME
    key = SoftAuthenticator()
    form = prompt(client, PASSKEYS)
    assert json.loads(form.options)["rp"]["id"] == "example.com"
    refused = post(
        client,
        form,
        key.create(form.options, origin="http://localhost"),
        name="Key",
        password=PASSWORD,
    )
    assert refused.status_code == 422
    assert any(REJECTED in m for m in error_messages(client, refused))
    assert stored_passkeys(app, user) == (0, 0)
    form = prompt(client, PASSKEYS)
    added = post(
        client,
        form,
        key.create(form.options, origin="https://example.com"),
        name="Key",
        password=PASSWORD,
    )
    assert len(recovery_codes_of(added)) == 10
    sign_out(client)
    for origin, rp_id in [
        ("http://localhost", "localhost"),
        ("http://localhost", "example.com"),
        ("https://example.com", "localhost"),
    ]:
        form = prompt(client, "/login")
        assert json.loads(form.options)["rpId"] == "example.com"
        response = post(client, form, key.get(form.options, origin=origin, rp_id=rp_id))
        assert path_of(response) == "/login", (origin, rp_id)
        assert not signed_in(client)
    form = prompt(client, "/login")
    accepted = post(client, form, key.get(form.options, origin="https://example.com"))
    assert path_of(accepted) == HOME
    assert signed_in(client)


# -- bad answers on every form -------------------------------------------------------------------

ENDPOINTS = {
    "sign-in": "/login/passkey",
    "second-step": "/login/two-factor/passkey",
    "reauthenticate": "/reauthenticate/passkey",
    "add": PASSKEYS,
}
BAD_ANSWERS = {
    "not-json": "garbage",
    "empty-object": "{}",
    "array": "[]",
    "null": "null",
    "wrong-types": json.dumps({"id": 1, "rawId": [], "type": "public-key", "response": "x"}),
}
NO_ANSWERS: dict[str, str | None] = {"no-field": None, "empty": "", "over-16KB": "x" * 20_000}


@pytest.fixture(scope="module")
def site_key(site: Flask) -> SoftAuthenticator:
    """ada on the module's app, with a passkey and recovery codes."""
    return give_passkey(site, make_user(site)).key


def ready_to_answer(site: Flask, key: SoftAuthenticator, endpoint: str) -> tuple[FlaskClient, str]:
    """A browser at the page whose passkey form posts to ``endpoint``; that page's path."""
    client = site.test_client()
    if endpoint == "/login/passkey":
        return client, "/login"
    if endpoint == "/login/two-factor/passkey":
        assert path_of(login(client)) == SECOND_STEP
        return client, SECOND_STEP
    assert path_of(passkey_sign_in(client, key)) == HOME
    return client, "/reauthenticate" if endpoint == "/reauthenticate/passkey" else PASSKEYS


def answer_with(
    site: Flask, key: SoftAuthenticator, endpoint: str, credential: str | None
) -> tuple[FlaskClient, TestResponse]:
    client, page = ready_to_answer(site, key, endpoint)
    form = prompt(client, page)
    assert urlsplit(form.action).path == endpoint
    return client, post(client, form, credential, name="Spare", password=PASSWORD)


@pytest.mark.parametrize("endpoint", ENDPOINTS.values(), ids=ENDPOINTS.keys())
def test_a_bad_answer_is_refused_with_a_message(
    site: Flask, site_key: SoftAuthenticator, endpoint: str
) -> None:
    for name, credential in BAD_ANSWERS.items():
        client, response = answer_with(site, site_key, endpoint, credential)
        messages = error_messages(client, response)
        assert any(REJECTED in m for m in messages), (name, messages)


@pytest.mark.parametrize(
    "endpoint",
    [pytest.param(path, id=name) for name, path in ENDPOINTS.items()],
)
def test_a_missing_answer_is_refused_with_a_message(
    site: Flask, site_key: SoftAuthenticator, endpoint: str
) -> None:
    for name, credential in NO_ANSWERS.items():
        client, response = answer_with(site, site_key, endpoint, credential)
        assert error_messages(client, response), name


@pytest.mark.parametrize("endpoint", [pytest.param(p, id=n) for n, p in ENDPOINTS.items()])
def test_deeply_nested_json_is_refused_without_a_server_error(
    site: Flask, site_key: SoftAuthenticator, endpoint: str
) -> None:
    client, response = answer_with(site, site_key, endpoint, "[" * 1000 + "]" * 1000)
    assert any(REJECTED in m for m in error_messages(client, response))
