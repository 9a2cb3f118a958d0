"""Usernames that cannot impersonate: RFC 8265 PRECIS keys, UTS #39 skeletons, one script.

Look-alike letters are written as escapes (a Cyrillic "a" is ``\\u0430``) so the tables
show what differs. Every refusal is checked where a person meets it: the /register page
(a form error beside the field) and ``POST /api/v1/register`` (problem+json).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_portcullis import get_state
from flask_portcullis.identity import username_key, username_skeleton

from .api_client import assert_problem, error_fields, post, sign_in
from .conftest import PASSWORD, login, make_user, signed_in, submit, text

TAKEN = "That username is already taken."
LOOK_ALIKE = "That username is too like one that is already taken."


def skeleton(name: str) -> str:
    return username_skeleton(username_key(name))


def form(username: str, email: str) -> dict[str, str]:
    return {
        "username": username,
        "email": email,
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }


def register_page(app: Flask, username: str, email: str) -> tuple[int, str]:
    response = submit(app.test_client(), "/register", form(username, email))
    return response.status_code, text(response)


def register_api(app: Flask, username: str, email: str) -> tuple[int, dict[str, Any]]:
    body = {"username": username, "email": email, "password": PASSWORD}
    response = post(app.test_client(), "/register", body)
    return response.status_code, response.get_json()


def usernames(app: Flask) -> list[str]:
    with app.app_context():
        User = get_state(app).models.User
        return list(get_state(app).db.session.scalars(select(User.username).order_by(User.id)))


# -- the skeleton ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("sc\u0430nner", "scanner"),  # Cyrillic a
        ("\u0455\u0441\u0430nn\u0435r", "scanner"),  # Cyrillic s, c, a, e
        ("rnodern", "modern"),  # "rn" looks like "m" (a two-letter prototype)
        ("\u03bf\u03bd\u03bf", "ovo"),  # Greek omicron, nu
        ("\u0585", "o"),  # Armenian oh
        ("\u0570\u0585\u057d", "hou"),  # Armenian ho, oh, seh
        ("\u0440\u043e\u0435", "poe"),  # a whole Cyrillic name
        ("bi11", "bill"),  # digit one and small L
        ("\uff53\uff43\uff41\uff4e\uff4e\uff45\uff52", "scanner"),  # full-width (the key already)
    ],
)
def test_look_alikes_have_one_skeleton(one: str, other: str) -> None:
    assert skeleton(one) == skeleton(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("jos\u00e9", "jose"),  # an accent is a different name
        ("ada", "adam"),
        ("\u0442\u043e\u0440", "top"),  # Cyrillic te is a small capital T, not t
    ],
)
def test_different_looking_names_keep_different_skeletons(one: str, other: str) -> None:
    assert skeleton(one) != skeleton(other)


def test_the_key_is_the_rfc_8265_form() -> None:
    """Case folded, width mapped, recomposed: 32 Greek iotas with dialytika and tonos stay 32
    characters (NFKC plus casefold alone made 96 of them)."""
    assert username_key("Ada.Lovelace") == "ada.lovelace"
    assert username_key("\uff33\uff23\uff21\uff2e\uff2e\uff25\uff32") == "scanner"
    assert username_key("Stra\u00dfe") == "strasse"
    assert username_key("\u0390" * 32) == "\u0390" * 32


# -- look-alikes of a taken name are taken -----------------------------------------------------

# (first account, later sign-up, message): every later name is written in one script.
TAKEN_LOOK_ALIKES = [
    pytest.param("poe", "\u0440\u043e\u0435", LOOK_ALIKE, id="cyrillic-whole-script"),
    pytest.param("\u0440\u043e\u0435", "poe", LOOK_ALIKE, id="latin-after-cyrillic"),
    pytest.param("cocoa", "\u0441\u043e\u0441\u043e\u0430", LOOK_ALIKE, id="cyrillic-cocoa"),
    pytest.param("ovo", "\u03bf\u03bd\u03bf", LOOK_ALIKE, id="greek-whole-script"),
    pytest.param("hou", "\u0570\u0585\u057d", LOOK_ALIKE, id="armenian-whole-script"),
    pytest.param("modern", "rnodern", LOOK_ALIKE, id="rn-for-m"),
    pytest.param("bill", "bi11", LOOK_ALIKE, id="digit-one-for-l"),
    pytest.param("scanner", "SCANNER", TAKEN, id="case"),
    pytest.param("scanner", "\uff53\uff43\uff41\uff4e\uff4e\uff45\uff52", TAKEN, id="full-width"),
]


@pytest.mark.parametrize(("first", "later", "message"), TAKEN_LOOK_ALIKES)
def test_a_look_alike_of_a_taken_name_is_refused_on_the_page(
    app: Flask, first: str, later: str, message: str
) -> None:
    make_user(app, first, "first@example.com")
    status, page = register_page(app, later, "later@example.com")
    assert status == 422
    assert message in page
    assert usernames(app) == [first]


@pytest.mark.parametrize(("first", "later", "message"), TAKEN_LOOK_ALIKES)
def test_a_look_alike_of_a_taken_name_is_a_409_in_the_api(
    app: Flask, first: str, later: str, message: str
) -> None:
    make_user(app, first, "first@example.com")
    response = post(
        app.test_client(),
        "/register",
        {"username": later, "email": "later@example.com", "password": PASSWORD},
    )
    body = assert_problem(response, 409, "username_taken")
    assert error_fields(body) == {"username"}
    assert body["errors"][0]["message"] == message
    assert usernames(app) == [first]


def test_a_host_app_inserting_users_directly_gets_skeletons_too(app: Flask) -> None:
    """Rows added without AccountService (a host app's own code) still carry a skeleton."""
    with app.app_context():
        state = get_state(app)
        state.db.session.add(
            state.models.User(
                username="poe",
                username_key="poe",
                email="poe@example.com",
                email_key="poe@example.com",
                password_hash=state.accounts.hashing.hash(PASSWORD),
                active=True,
            )
        )
        state.db.session.commit()
    status, page = register_page(app, "\u0440\u043e\u0435", "impostor@example.com")
    assert status == 422
    assert LOOK_ALIKE in page
    assert login(app.test_client(), "poe").status_code == 302


# -- one script per name -----------------------------------------------------------------------

MIXED = [
    pytest.param("sc\u0430nner", "Latin and Cyrillic", id="latin-with-cyrillic-a"),
    pytest.param("\u0455\u0441\u0430nn\u0435r", "Cyrillic and Latin", id="mostly-cyrillic"),
    pytest.param("p\u0430yp\u0430l", "Latin and Cyrillic", id="paypal"),
    pytest.param("\u0394mitry", "Greek and Latin", id="greek-with-latin"),
    pytest.param("g\u043eo\u0261le", "Latin and Cyrillic", id="google"),
    pytest.param("user_\u0438\u043c\u044f", "Latin and Cyrillic", id="latin-and-cyrillic-words"),
    pytest.param("\u0570ello", "Armenian and Latin", id="armenian-ho"),
]


@pytest.mark.parametrize(("name", "scripts"), MIXED)
def test_a_name_mixing_scripts_is_refused_on_the_page(app: Flask, name: str, scripts: str) -> None:
    status, page = register_page(app, name, "mixed@example.com")
    assert status == 422
    assert f"Use letters from one script: this name mixes {scripts}." in page
    assert usernames(app) == []


@pytest.mark.parametrize(("name", "scripts"), MIXED)
def test_a_name_mixing_scripts_is_a_422_in_the_api(app: Flask, name: str, scripts: str) -> None:
    status, body = register_api(app, name, "mixed@example.com")
    assert status == 422, body
    assert body["code"] == "invalid_field"
    assert body["errors"] == [
        {
            "field": "username",
            "message": f"Use letters from one script: this name mixes {scripts}.",
        }
    ]
    assert usernames(app) == []


def test_the_look_alike_from_the_report_is_refused_beside_the_original(app: Flask) -> None:
    """The issue's own case: with "scanner" registered, both forgeries are refused."""
    make_user(app, "scanner", "scanner@example.com")
    for forged, scripts in (
        ("sc\u0430nner", "Latin and Cyrillic"),
        ("\u0455\u0441\u0430nn\u0435r", "Cyrillic and Latin"),
    ):
        status, page = register_page(app, forged, "forger@example.com")
        assert status == 422
        assert f"this name mixes {scripts}" in page
    assert usernames(app) == ["scanner"]


def test_a_name_rfc_8265_disallows_is_refused_with_a_reason(app: Flask) -> None:
    """Latin letters with an Arabic-Indic digit break the bidi rule (RFC 5893, RFC 8265)."""
    status, page = register_page(app, "abc\u0661", "bidi@example.com")
    assert status == 422
    assert "Do not mix right-to-left letters with left-to-right letters or digits." in page
    status, body = register_api(app, "abc\u0661", "bidi@example.com")
    assert status == 422, body
    assert error_fields(body) == {"username"}


# -- legitimate names still register and sign in -----------------------------------------------

LEGITIMATE = [
    pytest.param("\u0414\u043c\u0438\u0442\u0440\u0438\u0439", id="cyrillic"),
    pytest.param("\u0395\u03bb\u03ad\u03bd\u03b7", id="greek"),
    pytest.param("\u5c71\u7530\u305f\u308d\u3046", id="japanese-kanji-and-hiragana"),
    pytest.param("\u3059\u305a\u304d\u30a4\u30c1\u30ed\u30fc", id="japanese-hiragana-katakana"),
    pytest.param("\u738b\u5c0f\u660e", id="chinese"),
    pytest.param("\uae40\ucca0\uc218", id="korean"),
    pytest.param("\u0645\u062d\u0645\u062f", id="arabic"),
    pytest.param("Jos\u00e9.M\u00fcller", id="latin-accents"),
    pytest.param("Kim\uae40\ucca0\uc218", id="latin-with-hangul"),
    pytest.param("tanaka\u7530\u4e2d", id="latin-with-han"),
]


@pytest.mark.parametrize("name", LEGITIMATE)
def test_a_single_script_name_registers_and_signs_in_on_the_page(app: Flask, name: str) -> None:
    client = app.test_client()
    response = submit(client, "/register", form(name, "someone@example.com"))
    assert response.status_code == 302, text(response)
    assert usernames(app) == [name]
    fresh = app.test_client()
    assert login(fresh, name.upper()).status_code == 302
    assert signed_in(fresh)


@pytest.mark.parametrize("name", LEGITIMATE)
def test_a_single_script_name_registers_and_signs_in_through_the_api(app: Flask, name: str) -> None:
    status, body = register_api(app, name, "someone@example.com")
    assert status == 201, body
    assert body["username"] == name
    assert sign_in(app.test_client(), name)["access_token"]


def test_an_accented_name_is_not_a_look_alike_of_the_plain_one(app: Flask) -> None:
    make_user(app, "jose", "jose@example.com")
    status, page = register_page(app, "jos\u00e9", "jose2@example.com")
    assert status == 302, page
    assert usernames(app) == ["jose", "jos\u00e9"]


def test_full_width_letters_sign_in_as_the_plain_name(app: Flask) -> None:
    make_user(app, "scanner", "scanner@example.com")
    client = app.test_client()
    assert login(client, "\uff53\uff43\uff41\uff4e\uff4e\uff45\uff52").status_code == 302
    assert signed_in(client)
    assert sign_in(app.test_client(), "\uff33\uff23\uff21\uff2e\uff2e\uff25\uff32")


def test_a_look_alike_typed_at_sign_in_is_not_the_account(app: Flask) -> None:
    """Sign-in compares keys, never skeletons: the forged name is just an unknown name."""
    make_user(app, "scanner", "scanner@example.com")
    client = app.test_client()
    assert login(client, "sc\u0430nner").status_code == 422
    assert not signed_in(client)
    with app.app_context():
        assert get_state(app).accounts.get_by_identity("sc\u0430nner") is None
        assert get_state(app).accounts.get_by_identity("abc\u0661") is None  # never raises
