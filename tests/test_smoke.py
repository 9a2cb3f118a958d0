from __future__ import annotations

from flask.testing import FlaskClient


def test_account_page_after_login(auth_client: FlaskClient) -> None:
    page = auth_client.get("/account")
    assert page.status_code == 200
    assert "ada@example.com" in page.get_data(as_text=True)
