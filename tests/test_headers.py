"""Security headers and caching rules on every page (OWASP ASVS 14.4, 8.2.1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from .conftest import make_app


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


def test_pages_have_no_inline_script_or_style(client: FlaskClient) -> None:
    for path in ("/", "/login", "/register"):
        page = client.get(path).get_data(as_text=True)
        # Script only as files of this site, with nothing inside the tag.
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
        assert all(re.search(r'src="/[^/]', attrs) and not body for attrs, body in scripts)
        assert "onclick=" not in page
        assert "javascript:" not in page
        assert "style=" not in page
        assert "<style" not in page


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
