"""Password hashing: argon2id at OWASP cost, legacy formats verified and upgraded."""

from __future__ import annotations

import argon2
import bcrypt
import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from flask_portcullis import InvalidCredentials, Settings, get_state
from flask_portcullis.passwords import (
    Argon2Hasher,
    BcryptHasher,
    PasswordHashing,
    WerkzeugHasher,
)

from .conftest import PASSWORD, make_user

FAST = Argon2Hasher(time_cost=1, memory_cost=64, parallelism=1)


@pytest.fixture
def hashing() -> PasswordHashing:
    return PasswordHashing([FAST, WerkzeugHasher(), BcryptHasher()])


def test_default_hash_is_argon2id_at_owasp_parameters() -> None:
    encoded = PasswordHashing.from_settings(Settings()).hash(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # An independent reading of the same hash.
    assert argon2.PasswordHasher().verify(encoded, PASSWORD)


def test_hashes_are_salted(hashing: PasswordHashing) -> None:
    assert hashing.hash(PASSWORD) != hashing.hash(PASSWORD)


@pytest.mark.parametrize(
    "encoded",
    [
        generate_password_hash(PASSWORD, method="pbkdf2:sha256"),
        generate_password_hash(PASSWORD, method="scrypt"),
        bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode(),
        bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a")).decode(),
    ],
    ids=["werkzeug-pbkdf2", "werkzeug-scrypt", "bcrypt-2b", "bcrypt-2a"],
)
def test_legacy_hashes_verify_and_ask_for_rehash(hashing: PasswordHashing, encoded: str) -> None:
    good = hashing.verify(PASSWORD, encoded)
    assert good.ok
    assert good.needs_rehash
    assert not hashing.verify(PASSWORD + "!", encoded).ok


def test_current_argon2_hash_needs_no_rehash(hashing: PasswordHashing) -> None:
    result = hashing.verify(PASSWORD, hashing.hash(PASSWORD))
    assert result.ok
    assert not result.needs_rehash


def test_weaker_argon2_parameters_ask_for_rehash() -> None:
    weak = PasswordHashing([FAST]).hash(PASSWORD)
    stronger = PasswordHashing([Argon2Hasher(time_cost=2, memory_cost=128, parallelism=1)])
    assert stronger.verify(PASSWORD, weak).needs_rehash


def test_bcrypt_hash_of_a_long_password_still_verifies(hashing: PasswordHashing) -> None:
    # bcrypt read only the first 72 bytes when the legacy app stored it.
    long_password = "p" * 100
    encoded = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert hashing.verify(long_password, encoded).ok


@pytest.mark.parametrize("encoded", [None, "", "plain-text", "$argon2id$broken", "$2b$04$short"])
def test_missing_or_unknown_hash_fails_without_error(
    hashing: PasswordHashing, encoded: str | None
) -> None:
    assert not hashing.verify(PASSWORD, encoded).ok


def test_nfkc_equivalent_passwords_match(hashing: PasswordHashing) -> None:
    composed = "caf\u00e9 au lait please"
    decomposed = "cafe\u0301 au lait please"
    assert hashing.verify(decomposed, hashing.hash(composed)).ok
    fullwidth = "\uff50\uff41\uff53\uff53 phrase here"  # "pass" in full-width letters
    assert hashing.verify("pass phrase here", hashing.hash(fullwidth)).ok


class CountingHasher(Argon2Hasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=1)
        self.verifies = 0

    def verify(self, password: str, encoded: str) -> bool:
        self.verifies += 1
        return super().verify(password, encoded)


def test_unknown_user_costs_the_same_hash_work_as_a_known_one(app: Flask) -> None:
    make_user(app)
    counter = CountingHasher()
    with app.app_context():
        authenticator = get_state(app).authenticator
        authenticator.hashing = PasswordHashing([counter])
        authenticator.hashing.verify_dummy("warm-up")  # the dummy hash is made once
        counter.verifies = 0
        with pytest.raises(InvalidCredentials):
            authenticator.authenticate("nobody-here", PASSWORD)
        unknown = counter.verifies
        counter.verifies = 0
        with pytest.raises(InvalidCredentials):
            authenticator.authenticate("ada", "wrong password entirely")
        assert unknown == counter.verifies == 1


@pytest.mark.parametrize(
    "legacy",
    [
        generate_password_hash(PASSWORD, method="pbkdf2:sha256"),
        bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode(),
    ],
    ids=["werkzeug", "bcrypt"],
)
def test_login_upgrades_a_legacy_hash_to_argon2id(app: Flask, legacy: str) -> None:
    user_id = make_user(app)
    with app.app_context():
        state = get_state(app)
        user = state.accounts.get(user_id)
        assert user is not None
        user.password_hash = legacy
        state.db.session.commit()
        state.authenticator.authenticate("ada", PASSWORD)
        state.db.session.expire_all()
        user = state.accounts.get(user_id)
        assert user is not None
        assert user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        assert state.authenticator.authenticate("ada", PASSWORD).id == user_id


def test_legacy_only_hashers_refuse_to_hash() -> None:
    with pytest.raises(TypeError):
        WerkzeugHasher().hash(PASSWORD)
    with pytest.raises(TypeError):
        BcryptHasher().hash(PASSWORD)
