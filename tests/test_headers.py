"""Security headers and caching rules on every page (OWASP ASVS 14.4, 8.2.1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_portcullis import ConfigurationError, csp, get_state

from .conftest import FakeClock, login, make_app, make_user, submit
from .totp import code_for


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/nonexistent"])
def test_security_headers(client: FlaskClient, path: str) -> None:
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # plain HTTP: HSTS would be ignored


def test_hsts_over_https(client: FlaskClient) -> None:
    headers = client.get("/login", base_url="https://localhost").headers
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")


ANONYMOUS_PAGES = ("/", "/login", "/register", "/forgot-password", "/reset-password/forged")
SIGNED_IN_PAGES = (
    "/account",
    "/account/password",
    "/account/email",
    "/account/delete",
    "/account/sessions",
    "/account/activity",
    "/account/two-factor",
    "/account/passkeys",
    "/reauthenticate",
    "/logout",
    "/admin/",
)


def assert_no_inline_script_or_style(page: str) -> None:
    # Script only as files of this site, with nothing inside the tag.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert all(re.search(r'src="/[^/]', attrs) and not body for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+=", page)  # onclick=, onload=, ...
    assert "javascript:" not in page
    assert "style=" not in page
    assert "<style" not in page


def test_pages_have_no_inline_script_or_style(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    """Every kind of page, as the strict CSP needs: anonymous, signed in (as an admin, with
    an app and a passkey set up), and the second sign-in step."""
    for path in ANONYMOUS_PAGES:
        response = client.get(path)
        assert response.status_code in (200, 400), path
        assert_no_inline_script_or_style(response.get_data(as_text=True))
    make_user(app, roles=("admin",))
    with app.app_context():
        state = get_state(app)
        ada = state.accounts.get_by_identity("ada")
        assert ada is not None
        secret = state.two_factor.begin(ada).secret
        state.two_factor.enable(ada, secret, code_for(secret, clock))
    assert login(client).headers["Location"] == "/login/two-factor"
    step = client.get("/login/two-factor")
    assert step.status_code == 200
    assert_no_inline_script_or_style(step.get_data(as_text=True))
    clock.advance(seconds=30)
    assert submit(client, "/login/two-factor", {"code": code_for(secret, clock)}).status_code == 302
    for path in SIGNED_IN_PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_no_inline_script_or_style(response.get_data(as_text=True))


def test_personal_pages_are_not_cached(auth_client: FlaskClient) -> None:
    for path in ("/", "/account", "/account/export", "/logout"):
        assert auth_client.get(path).headers["Cache-Control"] == "no-store", path


def test_assets_are_served_locally_and_cacheable(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert "http://" not in page.replace("http://localhost", "")
    assert "https://" not in page
    css = client.get("/portcullis/static/portcullis.css")
    assert css.status_code == 200
    assert css.headers.get("Cache-Control") != "no-store"
    css.close()


def test_headers_can_be_left_to_the_host(tmp_path: Path) -> None:
    app = make_app(tmp_path, PORTCULLIS_SECURITY_HEADERS=False)
    assert "Content-Security-Policy" not in app.test_client().get("/login").headers


DEFAULT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def test_default_policy_is_pinned(client: FlaskClient) -> None:
    assert client.get("/login").headers["Content-Security-Policy"] == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("added", "policy"),
    [
        (
            {"img-src": ["https://images.example.com"], "connect-src": ["https://api.example.com"]},
            # New directives start from what default-src allowed them: adding takes nothing away.
            DEFAULT_POLICY.replace("data:", "data: https://images.example.com")
            + "; connect-src 'self' https://api.example.com",
        ),
        (
            {"font-src": ["https://fonts.example.com"], "style-src": ["https://css.example.com"]},
            DEFAULT_POLICY.replace("style-src 'self'", "style-src 'self' https://css.example.com")
            + "; font-src 'self' https://fonts.example.com",
        ),
        (
            {
                "script-src-elem": ["https://js.example.com"],
                "script-src": ["'self'", "https://cdn.example.com"],
            },
            # Listed twice, kept once; script-src-elem starts from the script-src it replaces.
            DEFAULT_POLICY.replace("script-src 'self'", "script-src 'self' https://cdn.example.com")
            + "; script-src-elem 'self' https://cdn.example.com https://js.example.com",
        ),
        (
            {"object-src": ["https://plugins.example.com"], "upgrade-insecure-requests": []},
            # 'none' gives way to the sources added.
            DEFAULT_POLICY.replace("object-src 'none'", "object-src https://plugins.example.com")
            + "; upgrade-insecure-requests",
        ),
    ],
)
def test_csp_additions_are_merged_into_the_default(
    tmp_path: Path, added: dict[str, list[str]], policy: str
) -> None:
    app = make_app(tmp_path, PORTCULLIS_CSP=added)
    headers = app.test_client().get("/login").headers
    assert headers["Content-Security-Policy"] == policy
    assert headers["X-Frame-Options"] == "DENY"


def test_allowing_frames_drops_x_frame_options(tmp_path: Path) -> None:
    """X-Frame-Options can only say DENY or SAMEORIGIN: with frame-ancestors opened up it
    would contradict the policy, which browsers follow instead."""
    app = make_app(tmp_path, PORTCULLIS_CSP={"frame-ancestors": ["https://portal.example.com"]})
    headers = app.test_client().get("/login").headers
    assert headers["Content-Security-Policy"] == DEFAULT_POLICY.replace(
        "frame-ancestors 'none'", "frame-ancestors https://portal.example.com"
    )
    assert "X-Frame-Options" not in headers


def test_a_bad_csp_addition_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"PORTCULLIS_CSP\['script-src'\]"):
        make_app(tmp_path, PORTCULLIS_CSP={"script-src": ["'unsafe-inline'"]})


def test_headers_are_built_once_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, PORTCULLIS_CSP={"img-src": ["https://images.example.com"]})

    def no_building_per_request(*args: object) -> str:
        raise AssertionError("the policy is built per request")

    monkeypatch.setattr(csp, "build", no_building_per_request)
    client = app.test_client()
    for _ in range(2):
        assert (
            "https://images.example.com" in client.get("/login").headers["Content-Security-Policy"]
        )
