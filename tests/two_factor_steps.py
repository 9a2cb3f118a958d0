"""Turning on TOTP as a person would, through the set-up page: for the tests of two-factor
sign-in and of what it does to trusted devices."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from .conftest import FakeClock, submit
from .totp import code_for

SETUP = "/account/two-factor"
SECOND_STEP = "/login/two-factor"
SECRET_TEXT = re.compile(r'<code class="secret">([^<]+)</code>')
QR_IMAGE = re.compile(r'<img src="(data:image/svg\+xml[^"]+)"')
RECOVERY_CODE = re.compile(r"<li><code>([^<]+)</code></li>")


@dataclass(frozen=True)
class Enrolled:
    secret: str
    recovery_codes: list[str]


def setup_page(client: FlaskClient) -> tuple[str, str]:
    """The base32 secret and the QR code image (data: URI) of the set-up page."""
    page = client.get(SETUP)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    secret, qr = SECRET_TEXT.search(text), QR_IMAGE.search(text)
    assert secret, text
    assert qr, text
    return html.unescape(secret.group(1)).strip(), html.unescape(qr.group(1))


def recovery_codes_of(response: TestResponse) -> list[str]:
    assert response.status_code == 200, response.status_code
    return [html.unescape(c) for c in RECOVERY_CODE.findall(response.get_data(as_text=True))]


def enroll(client: FlaskClient, clock: FakeClock) -> Enrolled:
    """Turn on TOTP for the signed-in user, as a person with an authenticator app would."""
    secret, _ = setup_page(client)
    response = submit(client, SETUP, {"code": code_for(secret, clock)})
    codes = recovery_codes_of(response)
    assert len(codes) == 10
    return Enrolled(secret, codes)
