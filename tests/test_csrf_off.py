"""A host app's tests usually turn CSRF off (WTF_CSRF_ENABLED=False): every page still works."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from .conftest import PASSWORD, make_app, make_user

PAGES = ("/login", "/register", "/forgot-password")


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    app = make_app(tmp_path, WTF_CSRF_ENABLED=False)
    make_user(app)
    return app.test_client()


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_without_csrf(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200


def test_a_failed_and_a_right_sign_in_without_csrf(client: FlaskClient) -> None:
    refused = client.post("/login", data={"identity": "ada", "password": "wrong password!"})
    assert refused.status_code == 422
    assert "Incorrect username, email or password." in refused.get_data(as_text=True)
    signed_in = client.post("/login", data={"identity": "ada", "password": PASSWORD})
    assert signed_in.status_code == 302
    assert client.get("/account").status_code == 200
