"""Password rules per NIST SP 800-63B 5.1.1.2: length, no composition rules, no common ones."""

from __future__ import annotations

import pytest

from flask_portcullis import PasswordRejected, Settings
from flask_portcullis.password_policy import PasswordPolicy, common_passwords

POLICY = PasswordPolicy.from_settings(Settings())


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "ninechars",  # no digits, no symbols: composition rules are not NIST's
        "x" * 7 + "\u00e9",  # 8 characters, one of them non-ASCII
        "パスワードは長いほうがいい",  # Unicode passphrase
        "a" * 64 + "Zq",  # 66 characters is fine
        "z" * 256,  # the maximum
        "with spaces inside it",
    ],
)
def test_accepted(password: str) -> None:
    assert POLICY.check(password, username="ada", email="ada@example.com") == []


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "Use at least 8 characters."),
        ("", "Use at least 8 characters."),
        ("z" * 257, "Use at most 256 characters."),
        ("password1", "This password is too common"),
        ("PASSWORD1", "This password is too common"),
        ("qwertyuiop", "This password is too common"),
        ("ada-lovelace", "Do not use your username or email address"),
        ("ADA-LOVELACE", "Do not use your username or email address"),
        ("ada@example.com", "Do not use your username or email address"),
        ("nul\x00byte-password", "Do not use control characters"),
    ],
)
def test_refused(password: str, reason: str) -> None:
    reasons = POLICY.check(password, username="ada-lovelace", email="ada@example.com")
    assert any(r.startswith(reason) for r in reasons), reasons


def test_every_broken_rule_is_reported_at_once() -> None:
    with pytest.raises(PasswordRejected) as caught:
        POLICY.require("ada\x00", username="ada", email="a@example.com")
    assert len(caught.value.reasons) == 2


def test_length_counts_characters_not_bytes() -> None:
    # 8 characters but 24 bytes of UTF-8.
    assert POLICY.check("日本語のパスワ句", username="", email="") == []


def test_minimum_is_configurable() -> None:
    policy = PasswordPolicy.from_settings(Settings(password_min_length=12))
    assert policy.check("elevenchars", username="", email="") == ["Use at least 12 characters."]


def test_common_password_list_is_shipped_and_substantial() -> None:
    words = common_passwords()
    assert len(words) > 10_000
    assert "password" in words
    assert all(len(word) >= 8 for word in words)
