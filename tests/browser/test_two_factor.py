"""Two-factor sign-in with an authenticator app, in a real Chromium.

The "phone" is the test's own RFC 6238 code (``code_for``, checked against
the RFC's vectors in tests/test_two_factor.py), fed the secret the page shows
for manual entry and the server's clock.
"""

from __future__ import annotations

import pytest

from .conftest import LiveServer, NewContext, require_playwright

require_playwright()

from playwright.sync_api import Page, expect  # noqa: E402

from ..conftest import PASSWORD, FakeClock, Outbox, make_user  # noqa: E402
from ..totp import code_for  # noqa: E402

pytestmark = pytest.mark.browser


def password_step(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("Username or email", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="One more step")).to_be_visible()


def second_step(page: Page, code: str) -> None:
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")


def recovery_notice(outbox: Outbox) -> str:
    """The text of the mail telling ada a recovery code was used (waited for, bounded)."""
    for count in range(1, 6):
        for mail in outbox.wait_for("ada@example.com", count):
            if "A recovery code was used" in mail.text:
                return mail.text
    raise AssertionError([mail.subject for mail in outbox.to("ada@example.com")])


def test_turn_on_the_app_sign_in_with_it_and_fall_back_to_a_recovery_code(
    mail_live_server: LiveServer, mail_context: NewContext, clock: FakeClock, outbox: Outbox
) -> None:
    make_user(mail_live_server.app)
    page = mail_context().new_page()
    page.goto("/login")
    page.get_by_label("Username or email", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")

    page.goto("/account")
    page.get_by_role("link", name="Two-factor sign-in").click()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    # Drawn on the server and shown under the strict CSP (an image, not a script).
    assert qr.evaluate("image => image.complete && image.naturalWidth > 0")
    secret = page.locator("code.secret").inner_text()
    page.get_by_label("Code", exact=True).fill(code_for(secret, clock))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("ul.codes code").all_inner_texts()
    assert len(codes) == 10
    sign_out(page)

    # The password alone is not enough any more; the app's current code is.
    clock.advance(seconds=30)  # a new time step: the code used to turn it on is spent
    password_step(page)
    second_step(page, "000000" if code_for(secret, clock) != "000000" else "111111")
    expect(page.locator("main")).to_contain_text("That code is not right")
    second_step(page, code_for(secret, clock))
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")
    expect(page.locator("main .card")).to_contain_text("You are signed in as ada")
    sign_out(page)

    # Phone lost: a recovery code signs in once, and the owner is told by mail.
    password_step(page)
    second_step(page, codes[0])
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")
    assert recovery_notice(outbox)
    sign_out(page)
    password_step(page)
    second_step(page, codes[0])
    expect(page.locator("main")).to_contain_text("That code is not right, or was used")
    mail_live_server.assert_no_server_errors()
