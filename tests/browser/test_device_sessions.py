"""The device sessions page in a real Chromium: two browser contexts are two devices of one
user; the first signs the second out from ``/account/sessions``."""

from __future__ import annotations

import pytest

from .conftest import LiveServer, NewContext, require_playwright

require_playwright()  # skips (or fails, if required) before playwright is imported

from playwright.sync_api import Page, expect  # noqa: E402

from ..conftest import PASSWORD, make_user  # noqa: E402

pytestmark = pytest.mark.browser

PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) PhoneBrowser/1.0"


def sign_in(page: Page, base: str, identity: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username or email", exact=True).fill(identity)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_role("status")).to_have_text(f"Signed in as {identity}.")


def test_sign_out_another_device_from_the_sessions_page(
    live_server: LiveServer, new_context: NewContext
) -> None:
    base = live_server.url
    make_user(live_server.app, "ada", "ada@example.com", PASSWORD)
    laptop = new_context().new_page()
    phone_context = new_context()
    phone_context.set_extra_http_headers({"User-Agent": PHONE_UA})
    phone = phone_context.new_page()
    sign_in(laptop, base, "ada", PASSWORD)
    sign_in(phone, base, "ada", PASSWORD)

    laptop.goto("/account")
    laptop.get_by_role("link", name="Your devices").click()
    expect(laptop).to_have_url(f"{base}/account/sessions")
    expect(laptop.get_by_role("heading", name="Your devices")).to_be_visible()
    rows = laptop.get_by_role("table", name="Where you are signed in").locator("tbody tr")
    expect(rows).to_have_count(2)
    # Both browsers signed in, so both are trusted devices too, listed beside the sessions.
    trusted = laptop.get_by_role("table", name="Trusted devices").locator("tbody tr")
    expect(trusted).to_have_count(2)
    expect(trusted.filter(has_text="this browser")).not_to_contain_text(PHONE_UA)
    this_device = rows.filter(has_text="this device")
    other_device = rows.filter(has_not_text="this device")
    expect(this_device).to_have_count(1)
    expect(other_device).to_contain_text(PHONE_UA)
    expect(other_device).to_contain_text("127.0.0.1")
    expect(this_device).not_to_contain_text(PHONE_UA)
    expect(this_device.get_by_role("button", name="Sign out")).to_have_count(0)

    other_device.get_by_role("button", name="Sign out").click()

    expect(laptop).to_have_url(f"{base}/account/sessions")
    expect(laptop.get_by_role("status")).to_have_text("That device is signed out.")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("this device")
    # Signed out, the phone is still a trusted device: one button ends that too.
    everywhere = laptop.get_by_role("button", name="Sign out every other device")
    expect(everywhere).to_have_count(1)

    # The phone finds out on its very next navigation.
    phone.goto("/account")
    expect(phone).to_have_url(f"{base}/login?next=%2Faccount")
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(phone.get_by_role("status")).to_have_text("Please sign in to see that page.")

    # The laptop is still signed in.
    laptop.reload()
    expect(laptop).to_have_url(f"{base}/account/sessions")
    expect(rows).to_have_count(1)

    everywhere.click()
    expect(trusted).to_have_count(1)
    expect(trusted).to_contain_text("this browser")
    expect(everywhere).to_have_count(0)

    live_server.assert_no_server_errors()
