"""The JSON API as a whole (``/api/v1``, through the test client: JSON in, JSON or
problem+json out): JWKS, OpenAPI, docs and unknown paths; bad input; browsers and the API
kept apart; the audit trail of API actions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from flask_portcullis import get_state

from .api_client import (
    API,
    BEARER_OPERATIONS,
    NEW_PASSWORD,
    OPERATIONS,
    ORIGIN,
    PROBLEM,
    assert_problem,
    auth,
    body_of,
    error_fields,
    get,
    post,
    refresh,
    sign_in,
    split,
    subjects,
    unb64url,
    wait_for_mail,
)
from .conftest import (
    PASSWORD,
    REAL_LIMITS,
    AppFactory,
    Outbox,
    make_user,
    signed_in,
)
from .rows import recent_events

# -- JWKS, OpenAPI, docs, unknown paths --------------------------------------------------------


def test_jwks_publishes_only_the_public_key(api: FlaskClient, user: int) -> None:
    response = get(api, "/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "max-age" in response.headers["Cache-Control"]
    keys = body_of(response)["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA"
    assert key["use"] == "sig"
    assert "d" not in key  # no private part
    assert len(unb64url(key["x"])) == 32
    header, _, _ = split(sign_in(api)["access_token"])
    assert header["kid"] == key["kid"]


def api_routes(app: Flask) -> set[tuple[str, str]]:
    """Every (method, path) the API blueprint routes, but the document, docs and catch-all."""
    routes: set[tuple[str, str]] = set()
    skip = {"portcullis_api.unknown", "portcullis_api.openapi_json", "portcullis_api.docs"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("portcullis_api.") or rule.endpoint in skip:
            continue
        path = rule.rule.removeprefix(API).replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    return routes


def test_openapi_document_describes_every_operation(app: Flask, api: FlaskClient) -> None:
    response = get(api, "/openapi.json")
    assert response.status_code == 200
    doc = body_of(response)
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"][0]["url"].endswith("/api/v1")
    operations = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert operations >= OPERATIONS
    assert operations == api_routes(app)  # nothing routed that is not documented, and back
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path in operations:
        operation = doc["paths"][path][method]
        assert operation["operationId"]
        if (method, path) in OPERATIONS:
            assert (operation.get("security") == [{"bearer": []}]) == (
                (method, path) in BEARER_OPERATIONS
            ), path
        if "security" in operation:
            assert "401" in operation["responses"], path
        assert "503" in operation["responses"], path
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                assert answer["content"] == {
                    PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
    schemas = doc["components"]["schemas"]
    # The request schemas are the validating models: strict, no extra fields.
    for name in ("Register", "Login", "RefreshTokenBody", "ChangePassword", "ResetPassword"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["Register"]["properties"]["username"]["examples"] == ["ada"]
    assert set(schemas["Problem"]["required"]) >= {"title", "status", "code"}


def test_docs_page_renders_from_local_assets_and_links_the_document(api: FlaskClient) -> None:
    response = api.get(API + "/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert f'href="{API}/openapi.json"' in page
    for _, path in OPERATIONS:
        assert f"{API}{path}" in page, path
    assert 'src="http' not in page  # nothing from a CDN
    assert 'href="http' not in page


@pytest.mark.parametrize(("method", "path"), [("GET", "/nope"), ("POST", "/nope/deeper/still")])
def test_unknown_api_paths_are_problem_json_404(api: FlaskClient, method: str, path: str) -> None:
    assert_problem(api.open(API + path, method=method), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("PUT", "/me", "GET"), ("GET", "/login", "POST"), ("PUT", "/sessions", "GET")],
)
def test_a_wrong_method_on_an_api_path_is_problem_json_405(
    api: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = api.open(API + path, method=method)
    assert_problem(response, 405)
    assert allowed in response.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("TRACE", "/me"), ("PROPFIND", "/me"), ("QUERY", "/nope"), ("GET", ""), ("POST", "/")],
)
def test_every_answer_under_the_api_prefix_is_problem_json(
    api: FlaskClient, method: str, path: str
) -> None:
    """Found by this suite: unusual methods and the bare prefix got the site's HTML pages."""
    response = api.open(API + path, method=method, follow_redirects=True)
    assert response.status_code in (404, 405)
    assert_problem(response, response.status_code)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"identity": "ada", ', "application/json"),
        (b"not json at all", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[]", "application/json"),
        (b'["ada", "pw"]', "application/json"),
        (b'"ada"', "application/json"),
        (b"42", "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
        (b"[" * 60_000, "application/json"),  # deeper than the parser's recursion limit
        (b'{"identity": "ada", "password": "x"}', "text/plain"),
        (b"identity=ada&password=x", "application/x-www-form-urlencoded"),
        (b'{"identity": "ada", "password": "x"}', None),
    ],
)
@pytest.mark.parametrize("path", ["/login", "/register", "/refresh", "/forgot-password"])
def test_a_body_that_is_not_a_json_object_is_400(
    api: FlaskClient, path: str, data: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post(API + path, data=data, headers=headers)
    assert_problem(response, 400, "invalid_field")


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/login", {}, {"identity", "password"}),
        ("/login", {"identity": "ada"}, {"password"}),
        ("/login", {"identity": 1, "password": PASSWORD}, {"identity"}),
        ("/login", {"identity": "ada", "password": None}, {"password"}),
        ("/login", {"identity": ["ada"], "password": {"p": 1}}, {"identity", "password"}),
        ("/login", {"identity": "ada", "password": True}, {"password"}),
        ("/login", {"identity": "ada", "password": PASSWORD, "remember": True}, {"remember"}),
        ("/login", {"identity": "ada", "password": "x" * 5000}, {"password"}),
        ("/register", {"username": "grace", "email": "g@example.com"}, {"password"}),
        (
            "/register",
            {"username": "grace", "email": "g@example.com", "password": 12345678},
            {"password"},
        ),
        (
            "/register",
            {"username": "g", "email": "g@example.com", "password": PASSWORD, "admin": True},
            {"admin"},
        ),
        ("/refresh", {"refresh_token": ""}, {"refresh_token"}),
        ("/refresh", {"refresh_token": 7}, {"refresh_token"}),
        ("/logout", {}, {"refresh_token"}),
        ("/verify-email", {"token": None}, {"token"}),
        ("/forgot-password", {"email": ["a@example.com"]}, {"email"}),
        ("/reset-password", {"token": "t"}, {"password"}),
    ],
)
def test_wrong_missing_or_extra_fields_are_422_per_field(
    api: FlaskClient, user: int, path: str, body: dict[str, Any], fields: set[str]
) -> None:
    problem = assert_problem(post(api, path, body), 422, "invalid_field")
    assert error_fields(problem) == fields
    assert all(error["message"] for error in problem["errors"])
    assert all(set(error) == {"field", "message"} for error in problem["errors"])  # no echo


def test_an_oversized_body_is_413_problem_json(api: FlaskClient, user: int) -> None:
    body = {"identity": "ada", "password": "x" * 2_000_000}
    response = post(api, "/login", body)
    assert_problem(response, 413)
    documented = body_of(get(api, "/openapi.json"))["paths"]["/login"]["post"]["responses"]
    assert "413" in documented


def test_a_schema_valid_body_is_not_refused_with_an_undocumented_status(
    api: FlaskClient, user: int
) -> None:
    """Found by schemathesis: a 64 KiB cap refused two 4096-character passwords of astral
    characters, \\u-escaped as Python's json.dumps writes them (~98 KiB), with a 413 the
    document did not list."""
    token = sign_in(api)["access_token"]
    password = "\N{GRINNING FACE}" * 4096  # the schema's maxLength, in characters
    body = json.dumps({"current_password": password, "new_password": password})
    response = api.post(
        API + "/password", data=body, content_type="application/json", headers=auth(token)
    )
    documented = body_of(get(api, "/openapi.json"))["paths"]["/password"]["post"]["responses"]
    assert str(response.status_code) in documented, response.status_code


def test_bad_bodies_on_bearer_operations(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    malformed = api.post(
        API + "/password", data=b"{", content_type="application/json", headers=auth(token)
    )
    assert_problem(malformed, 400, "invalid_field")
    missing = post(api, "/password", {"new_password": NEW_PASSWORD}, token=token)
    assert error_fields(assert_problem(missing, 422)) == {"current_password"}


def test_an_unexpected_error_is_a_problem_without_a_stack_trace(
    make_demo_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_demo_app(TESTING=False)
    make_user(app)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals /srv/app.py line 42")

    monkeypatch.setattr(get_state(app).authenticator, "authenticate", broken)
    with pytest.MonkeyPatch.context() as quiet:
        quiet.setattr(app.logger, "disabled", True)  # Flask logs the exception; expected
        response = post(app.test_client(), "/login", {"identity": "ada", "password": PASSWORD})
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert "RuntimeError" not in json.dumps(body)


def test_a_database_outage_is_503_with_retry_after(
    app: Flask, api: FlaskClient, user: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionError("database is down"))

    monkeypatch.setattr(get_state(app).authenticator, "authenticate", down)
    response = post(api, "/login", {"identity": "ada", "password": PASSWORD})
    assert_problem(response, 503, "unavailable")
    assert response.headers["Retry-After"] == "30"
    assert "database is down" not in response.get_data(as_text=True)


def test_api_sign_in_from_a_new_device_is_notified(
    api: FlaskClient, user: int, outbox: Outbox
) -> None:
    sign_in(api, **{"User-Agent": "PhoneApp/1.0"})  # the first sign-in: nothing to compare
    sign_in(api, **{"User-Agent": "PhoneApp/1.0"})
    assert subjects(outbox, "ada@example.com", "New sign-in") == []
    sign_in(api, **{"User-Agent": "StrangeDevice/9"})
    wait_for_mail(outbox, "ada@example.com", lambda mail: "New sign-in" in mail.subject)


def test_every_401_carries_www_authenticate(api: FlaskClient, user: int) -> None:
    """RFC 9110 15.5.2 (found by this suite: the sign-in 401 had none)."""
    response = post(api, "/login", {"identity": "ada", "password": "nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


# -- browsers and the API stay apart -----------------------------------------------------------


def test_api_responses_set_no_cookies(api: FlaskClient, user: int, outbox: Outbox) -> None:
    pair = sign_in(api)
    responses = [
        post(api, "/login", {"identity": "ada", "password": PASSWORD}),
        post(api, "/login", {"identity": "ada", "password": "wrong"}),
        refresh(api, pair["refresh_token"]),
        get(api, "/me", token=pair["access_token"]),
        get(api, "/me"),
        get(api, "/sessions", token=pair["access_token"]),
        post(
            api, "/register", {"username": "eve", "email": "eve@example.com", "password": PASSWORD}
        ),
        post(api, "/forgot-password", {"email": "ada@example.com"}),
        get(api, "/jwks.json"),
        get(api, "/openapi.json"),
        post(api, "/logout", {"refresh_token": pair["refresh_token"]}),
    ]
    for response in responses:
        assert "Set-Cookie" not in response.headers, response.request.path
    assert api.get_cookie("session") is None


def test_a_browser_session_does_not_authorise_the_api(api: FlaskClient, web: FlaskClient) -> None:
    response = web.get(API + "/me")
    assert_problem(response, 401, "unauthorized")
    assert web.post(API + "/logout-everywhere").status_code == 401
    assert signed_in(web)


def test_a_bearer_token_does_not_sign_a_browser_in(api: FlaskClient, user: int) -> None:
    token = sign_in(api)["access_token"]
    response = api.get("/account", headers=auth(token))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_api_posts_need_no_csrf_token_but_cookie_posts_do(
    app: Flask, web: FlaskClient, user: int
) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True)
    assert "csrf" in app.extensions
    # The browser's own JSON POST to a cookie-authenticated page is refused without a token.
    cookie_json = web.post(
        "/account/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert cookie_json.status_code == 400
    assert web.post("/logout").status_code == 400
    assert signed_in(web)
    # The same browser calls the API with a bearer token and no CSRF token at all.
    pair = sign_in(web)
    response = post(
        web,
        "/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        token=pair["access_token"],
    )
    assert response.status_code == 204


def test_cors_is_off_by_default(api: FlaskClient, user: int) -> None:
    headers = {"Origin": ORIGIN}
    response = api.post(
        API + "/login", json={"identity": "ada", "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = api.options(
        API + "/login", headers={**headers, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_allows_only_listed_origins(make_demo_app: AppFactory) -> None:
    app = make_demo_app(PORTCULLIS_CORS_ORIGINS=[ORIGIN])
    make_user(app)
    api = app.test_client()
    preflight = api.options(
        API + "/me",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    response = api.post(
        API + "/login", json={"identity": "ada", "password": PASSWORD}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    token = body_of(response)["access_token"]
    me = api.get(API + "/me", headers={"Origin": ORIGIN, **auth(token)})
    assert me.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Errors carry it too, or the front-end could not read them.
    assert (
        api.get(API + "/me", headers={"Origin": ORIGIN}).headers["Access-Control-Allow-Origin"]
        == ORIGIN
    )

    for stranger in ("https://evil.example", "https://app.example.com.evil.example", "null"):
        refused = api.post(
            API + "/login",
            json={"identity": "ada", "password": PASSWORD},
            headers={"Origin": stranger},
        )
        assert "Access-Control-Allow-Origin" not in refused.headers, stranger
        assert (
            "Access-Control-Allow-Origin"
            not in api.options(
                API + "/me", headers={"Origin": stranger, "Access-Control-Request-Method": "GET"}
            ).headers
        )
    # The HTML pages are not opened to the listed origin.
    assert (
        "Access-Control-Allow-Origin" not in api.get("/login", headers={"Origin": ORIGIN}).headers
    )


# -- audit -------------------------------------------------------------------------------------


def test_api_sign_in_is_audited(app: Flask, api: FlaskClient, user: int) -> None:
    api.post(
        API + "/login",
        json={"identity": "ada", "password": PASSWORD},
        headers={"User-Agent": "PhoneApp/1.0"},
    )
    with app.app_context():
        rows = get_state(app).audit.recent(user)
        sign_ins = [row for row in rows if row.event == "sign-in"]
        assert len(sign_ins) == 1
        assert sign_ins[0].ip == "127.0.0.1"
        assert sign_ins[0].user_agent == "PhoneApp/1.0"
        assert "api" in sign_ins[0].detail


def test_failed_api_sign_in_is_audited(app: Flask, api: FlaskClient, user: int) -> None:
    assert_problem(post(api, "/login", {"identity": "ada", "password": "wrong"}), 401)
    assert "sign-in-failed" in recent_events(app, user)


def test_throttled_api_sign_in_is_audited(make_demo_app: AppFactory) -> None:
    app = make_demo_app(**REAL_LIMITS)
    make_user(app)
    api = app.test_client()
    for _ in range(10):
        sign_in(api)
    assert_problem(post(api, "/login", {"identity": "ada", "password": PASSWORD}), 429)
    with app.app_context():
        assert get_state(app).audit.search(event="throttled")
