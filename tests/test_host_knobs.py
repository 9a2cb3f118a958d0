"""What a host app can switch: the JSON API (PORTCULLIS_API) and where the security headers
go (PORTCULLIS_SECURITY_HEADERS) (#12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_portcullis import api, get_state

from .conftest import PASSWORD, AppFactory, login, make_user
from .host_app import create_host_app

ORIGIN = "https://app.example.com"
API_PATHS = ("/api/v1/openapi.json", "/api/v1/docs", "/api/v1/jwks.json", "/api/v1/me", "/api/v1")
SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


@pytest.fixture
def apps() -> dict[str, Flask]:
    """Demo apps by name, each on its own database (``make_demo_app`` disposes of them)."""
    return {}


def hook_names(funcs: dict[Any, list[Any]]) -> list[str]:
    return [f.__name__ for f in funcs.get(None, [])]


@pytest.mark.parametrize("order", [("off", "on"), ("on", "off")])
def test_the_api_is_left_out_of_one_app_and_served_by_another(
    make_demo_app: AppFactory, apps: dict[str, Flask], order: tuple[str, str]
) -> None:
    """The API blueprint is one object for the process: one app without it, in either
    order, changes nothing for another app with it."""
    for name in order:
        apps[name] = make_demo_app(
            name, mail=False, PORTCULLIS_API=name == "on", PORTCULLIS_CORS_ORIGINS=[ORIGIN]
        )
    off, on = apps["off"], apps["on"]

    assert "portcullis_api" not in off.blueprints
    assert not [r.rule for r in off.url_map.iter_rules() if r.rule.startswith("/api")]
    assert api.untrusted_host not in off.before_request_funcs[None]
    assert "cors" not in hook_names(off.after_request_funcs)
    client = off.test_client()
    for path in API_PATHS:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html", path  # the site's own 404, not problem+json
    preflight = client.options(
        "/api/v1/login", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert client.post("/api/v1/login", json={"identity": "ada"}).status_code == 404
    foreign = client.get("/api/v1/me", headers={"Host": "attacker.example"})
    assert foreign.status_code == 400
    assert foreign.mimetype == "text/html"  # the pages' answer: no API hook runs
    # The pages still work.
    make_user(off)
    assert login(client).status_code == 302
    assert client.get("/account").status_code == 200

    assert on.before_request_funcs[None][0] is api.untrusted_host
    assert "cors" in hook_names(on.after_request_funcs)
    client = on.test_client()
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    assert document.get_json()["openapi"].startswith("3.1")
    assert client.get("/api/v1/docs").status_code == 200
    missing = client.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.mimetype) == (404, "application/problem+json")
    make_user(on)
    pair = client.post(
        "/api/v1/login",
        json={"identity": "ada", "password": PASSWORD},
        headers={"Origin": ORIGIN},
    )
    assert pair.status_code == 200
    assert pair.headers["Access-Control-Allow-Origin"] == ORIGIN
    bearer = {"Authorization": f"Bearer {pair.get_json()['access_token']}"}
    assert client.get("/api/v1/me", headers=bearer).get_json()["username"] == "ada"
    foreign = client.get("/api/v1/me", headers={"Host": "attacker.example"})
    assert (foreign.status_code, foreign.mimetype) == (400, "application/problem+json")


def test_the_api_is_on_by_default(make_demo_app: AppFactory, apps: dict[str, Flask]) -> None:
    apps["default"] = make_demo_app("default", mail=False)
    assert get_state(apps["default"]).settings.api is True
    assert apps["default"].test_client().get("/api/v1/openapi.json").status_code == 200


# PORTCULLIS_SECURITY_HEADERS, on a host app with pages of its own.
PORTCULLIS_PAGES = (
    "/login",
    "/register",
    "/portcullis/static/portcullis.css",
    "/admin/",  # a redirect to sign in, from the admin blueprint
    "/api/v1/openapi.json",
    "/api/v1/nothing-here",
)
HOST_PAGES = ("/", "/shoes", "/no-such-page")


def host_with(tmp_path: Path, scope: object) -> Flask:
    return create_host_app(f"sqlite:///{tmp_path / 'host.db'}", PORTCULLIS_SECURITY_HEADERS=scope)


def fetch(app: Flask, path: str, **kwargs: Any) -> Any:
    response = app.test_client().get(path, **kwargs)
    response.close()  # static files are streamed
    return response


def test_scope_portcullis_puts_the_headers_on_portcullis_pages_only(tmp_path: Path) -> None:
    host = host_with(tmp_path, "portcullis")
    assert get_state(host).settings.security_headers == "portcullis"
    for path in PORTCULLIS_PAGES:
        headers = fetch(host, path).headers
        assert all(name in headers for name in SECURITY_HEADERS), path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
    for path in HOST_PAGES:
        headers = fetch(host, path).headers
        assert not [name for name in SECURITY_HEADERS if name in headers], path
    over_https = {"base_url": "https://localhost"}
    assert "Strict-Transport-Security" in fetch(host, "/login", **over_https).headers
    assert "Strict-Transport-Security" not in fetch(host, "/", **over_https).headers


@pytest.mark.parametrize("scope", [True, "all"])
def test_by_default_every_response_has_the_headers(tmp_path: Path, scope: object) -> None:
    host = host_with(tmp_path, scope)
    assert get_state(host).settings.security_headers == "all"
    for path in (*PORTCULLIS_PAGES, *HOST_PAGES):
        headers = fetch(host, path).headers
        assert all(name in headers for name in SECURITY_HEADERS), path


def test_the_default_scope_is_every_response(tmp_path: Path) -> None:
    host = create_host_app(f"sqlite:///{tmp_path / 'host.db'}")
    assert get_state(host).settings.security_headers == "all"
    assert "Content-Security-Policy" in fetch(host, "/").headers


@pytest.mark.parametrize("scope", [False, "off"])
def test_headers_off_adds_none(tmp_path: Path, scope: object) -> None:
    host = host_with(tmp_path, scope)
    for path in (*PORTCULLIS_PAGES, *HOST_PAGES):
        headers = fetch(host, path).headers
        assert not [name for name in SECURITY_HEADERS if name in headers], path


@pytest.mark.parametrize("scope", [True, "portcullis", False])
def test_personal_pages_stay_out_of_caches_in_every_scope(tmp_path: Path, scope: object) -> None:
    host = host_with(tmp_path, scope)
    make_user(host)
    client = host.test_client()
    login(client)
    for path in ("/", "/shoes", "/account"):  # the host's pages and Portcullis's
        assert client.get(path).headers["Cache-Control"] == "no-store", path
