"""No 500 under bad input: hostile form values, bodies, content types, query strings, cookies.

The app runs with ``TESTING = True``, so an unhandled exception in a view is
raised into the test instead of turning into a 500 page: every request below
either answers below 500 or fails the test loudly.

Every request here is refused, so one app per module serves them all (each
test still compares the database before and after, and uses its own clients).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from flask_portcullis import get_state

from .conftest import (
    PASSWORD,
    csrf_token,
    login,
    make_app,
    make_user,
    signed_in,
)

NEW_PASSWORD = "violet kettle under moonlight"

FORMS: dict[str, tuple[str, ...]] = {
    "/register": ("username", "email", "password", "password_confirm"),
    "/login": ("identity", "password", "remember"),
    "/account/password": ("current_password", "new_password", "new_password_confirm"),
    "/account/delete": ("password",),
}
SIGNED_IN_PAGES = {"/account/password", "/account/delete", "/logout"}
# Values that would succeed: each attempt spoils one of them.
VALID: dict[str, dict[str, str]] = {
    "/register": {
        "username": "grace",
        "email": "grace@example.com",
        "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD,
    },
    "/login": {"identity": "ada", "password": PASSWORD},
    "/account/password": {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    },
    "/account/delete": {"password": PASSWORD},
}
SCRIPT = "<script>alert(1)</script>"
PAYLOADS: dict[str, str] = {
    "nul": "ada\x00",
    "nul-only": "\x00",
    "10kB": "a" * 10_000,
    "100kB": "x" * 100_000,
    "rtl-override": "ada\u202egnp.exe",
    "zero-width-joiner": "a\u200db\u200dc",
    "zero-width-space": "ada\u200b",
    # A unicorn, a family (joined by ZWJ) and a rainbow flag (variation selector + ZWJ).
    "emoji": "\U0001f984 \U0001f469\u200d\U0001f469\u200d\U0001f467"
    " \U0001f3f3\ufe0f\u200d\U0001f308",
    "combining-marks": "e" + "\u0301" * 500,
    "fullwidth-at": "\uff41\uff44\uff41\uff20",
    "sql-injection": "' OR 1=1 --",
    "sql-injection-drop": "ada'; DROP TABLE users; --",
    "html": SCRIPT,
    "crlf": "ada\r\nSet-Cookie: x=y",
    "whitespace": " \t\u00a0\u3000 ",
    "format-string": "%s%s%n{0}{__class__}",
}
# Percent-encoded bytes that are not UTF-8: a lone surrogate, an overlong "/", a cut sequence.
INVALID_UTF8 = b"%ff%fe%ed%a0%80%c0%af%c3%28"
BOUNDARY = "portcullis-test-boundary"


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One demo app for the module, with ``ada`` (plain) and ``root`` (admin)."""
    app = make_app(Path(tmp_path_factory.mktemp("bad_input")))
    make_user(app)
    make_user(app, "root", "root@example.com", roles=("admin",))
    yield app
    with app.app_context():
        get_state(app).db.engine.dispose()


@pytest.fixture(scope="module")
def signed(site: Flask) -> FlaskClient:
    """A client signed in as ``ada`` for GET-only tests."""
    client = site.test_client()
    assert login(client).status_code == 302
    return client


@pytest.fixture(scope="module")
def admin(site: Flask) -> FlaskClient:
    client = site.test_client()
    assert login(client, "root").status_code == 302
    return client


def snapshot(app: Flask) -> tuple[object, ...]:
    """Everything a rejected form must leave alone: users, their hashes, roles and sessions."""
    with app.app_context():
        state = get_state(app)
        User, Session, user_roles = state.models.User, state.models.Session, state.models.user_roles
        db = state.db.session
        users = db.execute(
            select(
                User.id,
                User.username,
                User.email,
                User.password_hash,
                User.active,
                User.email_verified_at,
            ).order_by(User.id)
        ).all()
        roles = db.execute(select(user_roles).order_by(*user_roles.c)).all()
        per_user = select(Session.user_id, func.count()).group_by(Session.user_id)
        sessions = db.execute(per_user.order_by(Session.user_id)).all()
        return tuple(tuple(row) for row in [*users, *roles, *sessions])


def answer(client: FlaskClient, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    """Send a request; an exception the app lets escape (TESTING) counts as the 500 it would be."""
    try:
        response = client.open(path, method=method, **kwargs)
    except Exception as exc:  # a production server answers this with a bare 500
        return 500, repr(exc)
    return response.status_code, response.get_data(as_text=True)[:200]


def browser(app: Flask, page: str) -> FlaskClient:
    """A fresh client: signed in as ada for the account pages, anonymous otherwise."""
    client = app.test_client()
    if page in SIGNED_IN_PAGES:
        assert login(client).status_code == 302
    return client


def assert_unchanged(app: Flask, client: FlaskClient, page: str, before: object, what: str) -> None:
    assert snapshot(app) == before, what
    assert signed_in(client) == (page in SIGNED_IN_PAGES), what


def multipart(fields: dict[str, str]) -> bytes:
    """Encode a multipart body by hand (the test client spools big bodies to unclosed files)."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def post_multipart(client: FlaskClient, page: str, fields: dict[str, str]) -> TestResponse:
    return client.post(
        page, data=multipart(fields), content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )


def with_passwords(page: str, value: str, token: str) -> dict[str, str]:
    """The valid form for ``page`` with every password field set to ``value``."""
    data = {**VALID[page], "csrf_token": token}
    for field in FORMS[page]:
        if "password" in field:
            data[field] = value
    return data


# -- form values -----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
@pytest.mark.parametrize("page", list(FORMS))
def test_form_values_are_rejected_without_a_server_error(
    site: Flask, page: str, payload: str
) -> None:
    client = browser(site, page)
    before = snapshot(site)
    fields = FORMS[page]
    token = csrf_token(client, page)
    everything = dict.fromkeys(fields, payload)
    attempts: list[tuple[str, dict[str, str], int]] = [
        ("every field, with token", {"csrf_token": token, **everything}, 422),
        ("every field, no token", everything, 400),
        ("every field, payload as token", {**everything, "csrf_token": payload}, 400),
    ]
    attempts += [
        (f"only {field}", {**VALID[page], field: payload, "csrf_token": token}, 422)
        for field in fields
        if field != "remember"  # any value means "yes"; the credentials are valid
    ]
    for what, data, expected in attempts:
        response = client.post(page, data=data)
        assert response.status_code == expected, what
        body = response.get_data(as_text=True)
        assert SCRIPT not in body, what
        if expected == 422:
            assert 'name="csrf_token"' in body, what  # the form is shown again
        assert snapshot(site) == before, what
    assert signed_in(client) == (page in SIGNED_IN_PAGES)


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_logout_ignores_junk_but_not_a_missing_token(site: Flask, payload: str) -> None:
    client = browser(site, "/logout")
    token = csrf_token(client, "/logout")
    assert client.post("/logout", data={"x": payload}).status_code == 400
    assert client.post("/logout", data={"csrf_token": payload}).status_code == 400
    assert signed_in(client)
    response = client.post("/logout", data={"csrf_token": token, "x": payload, "next": payload})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).netloc == ""
    assert not signed_in(client)


@pytest.mark.parametrize(
    "value", [INVALID_UTF8, b"\xff\xfe\xfd\x00\xc0", b"%00%00", b"%", b"%zz%4"],
    ids=["percent-invalid-utf8", "raw-invalid-bytes", "percent-nul", "lone-percent", "bad-escape"],
)  # fmt: skip
@pytest.mark.parametrize("page", [*FORMS, "/logout"])
def test_raw_urlencoded_body_with_invalid_bytes(site: Flask, page: str, value: bytes) -> None:
    client = browser(site, page)
    token = csrf_token(client, page)
    for with_token in (True, False):
        before = snapshot(site)
        pairs = [field.encode() + b"=" + value for field in FORMS.get(page, ("x",))]
        if with_token:
            pairs.append(b"csrf_token=" + token.encode())
        pairs.append(b"junk=" + value)
        response = client.post(
            page, data=b"&".join(pairs), content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code < 500
        if page != "/logout":
            assert response.status_code in (400, 422)
            assert_unchanged(site, client, page, before, f"token: {with_token}")


@pytest.mark.parametrize("page", list(FORMS))
def test_repeated_fields_use_the_first_value_only(site: Flask, page: str) -> None:
    client = browser(site, page)
    before = snapshot(site)
    token = csrf_token(client, page)
    # The valid value comes second: it must not be picked up.
    data: dict[str, Any] = {field: ["' OR 1=1 --", value] for field, value in VALID[page].items()}
    response = client.post(page, data={**data, "csrf_token": [token, "junk"]})
    assert response.status_code == 422
    assert_unchanged(site, client, page, before, "valid token first")
    response = client.post(page, data={**data, "csrf_token": ["junk", token]})
    assert response.status_code == 400
    assert_unchanged(site, client, page, before, "junk token first")
    many = {field: ["x"] * 200 for field in FORMS[page]}
    response = client.post(page, data={**many, "csrf_token": token})
    assert response.status_code == 422
    assert_unchanged(site, client, page, before, "200 copies")


@pytest.mark.parametrize("page", list(FORMS))
def test_missing_fields(site: Flask, page: str) -> None:
    client = browser(site, page)
    before = snapshot(site)
    token = csrf_token(client, page)
    response = client.post(page, data={"csrf_token": token})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Enter your" in body or "Choose a password" in body
    assert_unchanged(site, client, page, before, "token only")
    assert client.post(page, data={}).status_code == 400
    assert client.post(page).status_code == 400
    assert_unchanged(site, client, page, before, "empty body")
    for field in FORMS[page]:
        if field == "remember":
            continue
        data = {k: v for k, v in VALID[page].items() if k != field}
        response = client.post(page, data={**data, "csrf_token": token})
        assert response.status_code == 422, field
        assert snapshot(site) == before, f"without {field}"
    assert signed_in(client) == (page in SIGNED_IN_PAGES)


WRONG_BODIES: dict[str, tuple[str, bytes]] = {
    "text": ("text/plain", b"username=grace&identity=ada&password=x"),
    "xml": ("application/xml", b"<user><name>grace</name></user>"),
    "octets": ("application/octet-stream", b"\x00" * 100_000),
    "json-object": ("application/json", b'{"username": "grace", "password": "x"}'),
    "latin-1": ("application/x-www-form-urlencoded; charset=iso-8859-1", b"username=gr\xe2ce"),
    "multipart-no-boundary": ("multipart/form-data", b"username=grace"),
    "multipart-truncated": (
        "multipart/form-data; boundary=x",
        b"--x\r\nContent-Disposition: form-data\r\n\r\n",
    ),
    "empty-type": ("", b"username=grace"),
    "nonsense-type": ("nonsense", b"username=grace"),
}


@pytest.mark.parametrize("kind", list(WRONG_BODIES))
def test_wrong_content_type_without_token(site: Flask, kind: str) -> None:
    content_type, body = WRONG_BODIES[kind]
    for page in FORMS:
        client = browser(site, page)
        before = snapshot(site)
        response = client.post(page, data=body, content_type=content_type)
        assert response.status_code == 400, page
        assert_unchanged(site, client, page, before, page)


@pytest.mark.parametrize("page", list(FORMS))
def test_json_object_of_strings_with_csrf_header(site: Flask, page: str) -> None:
    """Flask-WTF reads JSON bodies into forms; string values go through the usual checks."""
    client = browser(site, page)
    before = snapshot(site)
    token = csrf_token(client, page)
    body = json.dumps(dict.fromkeys(FORMS[page], "' OR 1=1 --"))
    response = client.post(
        page, data=body, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 422
    assert_unchanged(site, client, page, before, "json")


@pytest.mark.parametrize("page", list(FORMS))
def test_multipart_form_with_junk_values(site: Flask, page: str) -> None:
    client = browser(site, page)
    before = snapshot(site)
    token = csrf_token(client, page)
    fields = {**dict.fromkeys(FORMS[page], "' OR 1=1 --"), "csrf_token": token}
    assert post_multipart(client, page, fields).status_code == 422
    assert_unchanged(site, client, page, before, "multipart")


# -- size limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", list(FORMS))
def test_one_megabyte_password_urlencoded_is_a_form_error(site: Flask, page: str) -> None:
    client = browser(site, page)
    before = snapshot(site)
    token = csrf_token(client, page)
    response = client.post(page, data=with_passwords(page, "p" * 1_000_000, token))
    assert response.status_code == 422
    assert "at most" in response.get_data(as_text=True)
    assert_unchanged(site, client, page, before, "1 MB")


@pytest.mark.parametrize("page", list(FORMS))
def test_one_megabyte_field_in_multipart_is_413_with_a_clear_page(site: Flask, page: str) -> None:
    client = browser(site, page)
    before = snapshot(site)
    token = csrf_token(client, page)
    field = next(f for f in FORMS[page] if "password" in f)
    fields = {**VALID[page], field: "p" * 1_000_000, "csrf_token": token}
    response = post_multipart(client, page, fields)
    assert response.status_code == 413
    text = response.get_data(as_text=True)
    assert "<h1>Request Entity Too Large</h1>" in text
    assert "Traceback" not in text
    assert_unchanged(site, client, page, before, "1 MB multipart")


@pytest.mark.parametrize("page", ["/register", "/login"])
def test_two_big_multipart_fields_from_an_anonymous_visitor_are_413(site: Flask, page: str) -> None:
    client = site.test_client()
    token = csrf_token(client, page)
    response = post_multipart(
        client, page, {**with_passwords(page, "p" * 1_000_000, token), "x": "p" * 1_000_000}
    )
    assert response.status_code == 413


def test_two_big_multipart_fields_from_a_signed_in_user_are_413(site: Flask) -> None:
    answers = {}
    for page in ("/account/password", "/account/delete"):
        client = browser(site, page)
        fields = {**with_passwords(page, "p" * 1_000_000, csrf_token(client, page))}
        fields["x"] = "p" * 1_000_000
        answers[page] = answer(
            client,
            "POST",
            page,
            data=multipart(fields),
            content_type=f"multipart/form-data; boundary={BOUNDARY}",
        )
    assert {page: status for page, (status, _) in answers.items()} == {
        "/account/password": 413,
        "/account/delete": 413,
    }, answers


@pytest.mark.parametrize(
    ("page", "fields"),
    [
        ("/register", ("password", "password_confirm")),
        ("/account/password", ("new_password", "new_password_confirm")),
    ],
)
def test_100kb_new_password_is_a_form_error_naming_the_maximum_and_is_not_hashed(
    site: Flask, monkeypatch: pytest.MonkeyPatch, page: str, fields: tuple[str, ...]
) -> None:
    client = browser(site, page)
    before = snapshot(site)
    hashing = get_state(site).accounts.hashing
    hashed: list[int] = []
    original: Callable[[str], str] = hashing.hash

    def counting_hash(password: str) -> str:
        hashed.append(len(password))
        return original(password)

    monkeypatch.setattr(hashing, "hash", counting_hash)
    data = {**VALID[page], **dict.fromkeys(fields, "z" * 100_000)}
    response = client.post(page, data={**data, "csrf_token": csrf_token(client, page)})
    assert response.status_code == 422
    assert "Use at most 256 characters." in response.get_data(as_text=True)
    assert hashed == []
    assert_unchanged(site, client, page, before, "100 kB")


def test_password_just_over_the_maximum_names_the_maximum(site: Flask) -> None:
    client = site.test_client()
    before = snapshot(site)
    long = "y" * 257
    data = {**VALID["/register"], "password": long, "password_confirm": long}
    data["csrf_token"] = csrf_token(client, "/register")
    response = client.post("/register", data=data)
    assert response.status_code == 422
    assert "Use at most 256 characters." in response.get_data(as_text=True)
    assert snapshot(site) == before


# -- bodies the HTML forms were never meant to get ---------------------------------------------

NON_OBJECT_JSON = ["[1, 2]", '"text"', "42", "{not json"]


@pytest.mark.parametrize("body", NON_OBJECT_JSON)
def test_non_object_json_body_from_an_anonymous_visitor(site: Flask, body: str) -> None:
    client = site.test_client()
    for path in ("/login", "/register", "/account/password", "/account", "/"):
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code in (400, 405), path


def test_non_object_json_body_from_a_signed_in_user(site: Flask, signed: FlaskClient) -> None:
    failures = []
    for path in ("/account/password", "/logout", "/account", "/"):
        for body in NON_OBJECT_JSON:
            status, detail = answer(
                signed, "POST", path, data=body, content_type="application/json"
            )
            if status not in (400, 405):
                failures.append((path, body, status, detail))
    assert failures == []


def test_json_non_string_values_with_csrf_header(site: Flask) -> None:
    before = snapshot(site)
    failures = []
    for page in ("/register", "/login"):
        for value in (5, True, 1.5):
            client = site.test_client()
            token = csrf_token(client, page)
            body = json.dumps(dict.fromkeys(FORMS[page], value))
            status, detail = answer(
                client,
                "POST",
                page,
                data=body,
                content_type="application/json",
                headers={"X-CSRFToken": token},
            )
            if status != 422:
                failures.append((page, value, status, detail))
    assert snapshot(site) == before
    assert failures == []


def test_file_upload_in_a_text_field(site: Flask) -> None:
    before = snapshot(site)
    failures = []
    for page, field in [("/register", "username"), ("/login", "identity")]:
        client = site.test_client()
        data: dict[str, Any] = {
            **VALID[page],
            "csrf_token": csrf_token(client, page),
            field: (io.BytesIO(b"ada"), "ada.txt"),
        }
        status, detail = answer(client, "POST", page, data=data, content_type="multipart/form-data")
        if status != 422:
            failures.append((page, field, status, detail))
    assert snapshot(site) == before
    assert failures == []


# -- query strings and next ------------------------------------------------------------------

NEXT_VALUES: dict[str, str] = {
    "scheme-relative": "//evil.example/",
    "absolute": "https://evil.example/",
    "backslash": "/\\evil.example",
    "backslashes": "\\\\evil.example",
    "javascript": "javascript:alert(1)",
    "data": f"data:text/html,{SCRIPT}",
    "crlf": "/\r\nSet-Cookie: x=y",
    "nul": "/\x00",
    "tab": "/\t/evil.example",
    "triple-slash": "///evil.example",
    "leading-space": " /account",
    "rtl": "/\u202eevil",
    "emoji": "/\U0001f984",
    "long": "/" + "a" * 10_000,
    "nested-next": "/login?next=//evil.example",
    "fragment": "/account#x",
    "html": f"/{SCRIPT}",
    "empty": "",
}
GET_PAGES = ("/login", "/register", "/logout", "/account", "/account/password", "/", "/admin/")


@pytest.mark.parametrize("value", list(NEXT_VALUES.values()), ids=list(NEXT_VALUES))
def test_weird_next_on_get_pages(site: Flask, signed: FlaskClient, value: str) -> None:
    for client in (site.test_client(), signed):
        for path in GET_PAGES:
            response = client.get(f"{path}?next={quote(value, safe='')}")
            assert response.status_code < 500, path
            location = response.headers.get("Location", "")
            assert urlsplit(location).netloc in ("", "localhost"), path
            assert SCRIPT not in response.get_data(as_text=True), path


@pytest.mark.parametrize("value", list(NEXT_VALUES.values()), ids=list(NEXT_VALUES))
def test_weird_next_after_sign_in_stays_on_site(site: Flask, value: str) -> None:
    client = site.test_client()
    response = login(client, path=f"/login?next={quote(value, safe='')}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/")
    assert not location.startswith("//")
    assert "\\" not in location
    assert urlsplit(location).netloc == ""
    assert not any(ord(ch) < 0x21 for ch in location)


QUERY_STRINGS = [
    "next=%ff%fe",
    "next=%ed%a0%80",
    "next=%",
    "next=%zz",
    "next&next=&next=/a&next=//evil.example",
    "a=1&a=2&a=3&" + "b=2&" * 500,
    "=&&&==&",
    "%00=%00",
    "q=" + "x" * 10_000,
    "page=-1&page=abc",
    "x=%F0%9F%A6%84%E2%80%AE",
    "q=%27%20OR%201%3D1%20--",
]


@pytest.mark.parametrize("query", QUERY_STRINGS)
def test_weird_query_strings(site: Flask, signed: FlaskClient, query: str) -> None:
    for client in (site.test_client(), signed):
        for path in GET_PAGES:
            assert client.get(f"{path}?{query}").status_code < 500, path


@pytest.mark.parametrize(
    "path", ["/account/%00", "/admin/%ff", "/%ed%a0%80", "/" + "a" * 5000, "/login/..%2f..%2fetc"]
)
def test_weird_paths_are_404(site: Flask, path: str) -> None:
    assert site.test_client().get(path).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "q=%00",
        "q=%ff%fe",
        "q=%25",
        "q=_",
        "q=%27%20OR%201%3D1%20--",
        "q=" + "a" * 10_000,
        "q=a&q=b",
        "q=%E2%80%AE",
        "page=0",
        "page=-3",
        "page=abc",
        "page=1e3",
        "page=%00",
        "page=%EF%BC%92",
    ],
)
def test_admin_console_weird_queries(admin: FlaskClient, query: str) -> None:
    response = admin.get(f"/admin/users?{query}")
    assert response.status_code == 200
    assert "<h1>Users</h1>" in response.get_data(as_text=True)


def test_admin_console_far_page_is_empty(admin: FlaskClient) -> None:
    # (N - 1) * 50 just below 2**63: the largest offset SQLite takes.
    response = admin.get("/admin/users?page=184467440737095516")
    assert response.status_code == 200
    assert "No users match." in response.get_data(as_text=True)


def test_admin_console_huge_page_number(admin: FlaskClient) -> None:
    answers = {
        page: answer(admin, "GET", f"/admin/?page={page}")
        for page in ("184467440737095517", "9223372036854775807", "9" * 30)
    }
    assert {page: status for page, (status, _) in answers.items()} == {
        "184467440737095517": 200,
        "9223372036854775807": 200,
        "9" * 30: 200,
    }, answers


# -- cookies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cookie", ["garbage", "", "e30.Zm9v.YmFy", "." + "A" * 3000, "%00", "x" * 4000]
)
def test_forged_session_cookie_is_anonymous(site: Flask, cookie: str) -> None:
    client = site.test_client()
    client.set_cookie("session", cookie)
    for path in ("/", "/account", "/login", "/admin/"):
        assert client.get(path).status_code in (200, 302), path
    assert not signed_in(client)
    assert login(client).status_code == 302


@pytest.mark.parametrize(
    ("sid", "user_id"),
    [
        (["x"], "1"),
        (123, "1"),
        (None, "1"),
        ({"a": 1}, "1"),
        ("x" * 2000, "1"),
        ("not-a-session", {"a": 1}),
        ("not-a-session", ["1"]),
        ("not-a-session", "' OR 1=1 --"),
    ],
)
def test_odd_values_in_a_signed_session_are_anonymous(
    site: Flask, sid: object, user_id: object
) -> None:
    client = site.test_client()
    with client.session_transaction() as session:
        session["_portcullis_sid"] = sid
        session["_user_id"] = user_id
    assert client.get("/").status_code == 200
    assert not signed_in(client)


def test_swapping_the_user_id_in_a_live_session_signs_out(site: Flask) -> None:
    client = browser(site, "/account/password")
    with site.app_context():
        root = get_state(site).accounts.require_by_identity("root").id
    with client.session_transaction() as session:
        session["_user_id"] = str(root)
    assert client.get("/account").status_code == 302
    assert client.get("/admin/").status_code == 302
    assert "root@example.com" not in client.get("/").get_data(as_text=True)
