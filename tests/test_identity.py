"""Usernames and email addresses: normalised, validated, compared case-insensitively."""

from __future__ import annotations

import pytest

from flask_portcullis.exceptions import FieldError
from flask_portcullis.identity import clean_email, clean_username, identity_key


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ada", "ada"),
        ("  Ada.Lovelace ", "Ada.Lovelace"),
        ("\uff41\uff44\uff41", "ada"),  # full-width letters fold to ASCII under NFKC
        ("zoë_99", "zoë_99"),
        ("Ελένη", "Ελένη"),
    ],
)
def test_good_usernames(raw: str, clean: str) -> None:
    assert clean_username(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        "ab",
        "x" * 33,
        "ada lovelace",
        "ada@example.com",
        ".ada",
        "-ada",
        "ada\x00",
        "ada<script>",
        "",
    ],
)
def test_bad_usernames(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        clean_username(raw)
    assert caught.value.field == "username"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada@EXAMPLE.com", "Ada@example.com"),
        (" ada@example.com ", "ada@example.com"),
    ],
)
def test_good_emails(raw: str, clean: str) -> None:
    assert clean_email(raw) == clean


@pytest.mark.parametrize(
    "raw",
    ["ada", "ada@", "@example.com", "ada@@example.com", "a" * 250 + "@example.com", "a\x00@b.c"],
)
def test_bad_emails(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        clean_email(raw)
    assert caught.value.field == "email"


def test_keys_ignore_case_and_width() -> None:
    assert identity_key("ADA") == identity_key("ada") == identity_key("\uff21\uff24\uff21")
    assert identity_key("Straße") == identity_key("STRASSE")
