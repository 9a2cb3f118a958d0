"""Passkeys in a real Chromium, with a CDP virtual authenticator standing in for the device.

The authenticator is Chromium's own (``WebAuthn.addVirtualAuthenticator``): it
makes real P-256 credentials and signs real assertions, and "touches" itself
(automatic presence and verification), so the whole ceremony runs as it would
with a phone or a security key. The page is opened on ``localhost``: WebAuthn
refuses an IP address as a relying-party id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flask_portcullis import get_state

from .conftest import TIMEOUT_MS, LiveServer, require_playwright, serve

require_playwright()

from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, expect  # noqa: E402

from ..conftest import PASSWORD, FakeClock, make_app, make_user  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path, clock: FakeClock) -> Iterator[LiveServer]:
    app = make_app(tmp_path, clock)
    make_user(app)
    try:
        with serve(app) as live:
            live.url = live.url.replace("127.0.0.1", "localhost")
            yield live
    finally:
        with app.app_context():
            get_state(app).db.engine.dispose()


@dataclass
class Device:
    page: Page
    cdp: CDPSession
    authenticator: str

    def credentials(self) -> list[dict[str, Any]]:
        """What the authenticator holds (its own view, not the site's)."""
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        credentials: list[dict[str, Any]] = found["credentials"]
        return credentials


# A browser whose autofill offers no passkeys (conditional mediation unsupported, as in
# older browsers): sign-in goes through the buttons. With autofill on, Chromium's virtual
# authenticator picks its passkey from the list at once, as a user would.
WITHOUT_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"


@contextmanager
def open_device(browser: Browser, server: LiveServer, *, autofill: bool) -> Iterator[Device]:
    """A browser context with a platform authenticator (like a laptop's fingerprint reader)."""
    context: BrowserContext = browser.new_context(base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(
        lambda url: not url.startswith(server.url + "/"),
        lambda route: route.abort("blockedbyclient"),
    )
    if not autofill:
        context.add_init_script(WITHOUT_AUTOFILL)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield Device(page, cdp, added["authenticatorId"])
    finally:
        context.close()
    server.assert_no_server_errors()
    assert not errors, errors


@pytest.fixture
def device(browser: Browser, server: LiveServer) -> Iterator[Device]:
    with open_device(browser, server, autofill=False) as opened:
        yield opened


@pytest.fixture
def autofill_device(browser: Browser, server: LiveServer) -> Iterator[Device]:
    with open_device(browser, server, autofill=True) as opened:
        yield opened


def sign_in_with_password(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("Username or email", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")


def add_passkey(page: Page, name: str) -> None:
    page.goto("/account/passkeys")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Add a passkey").click()


def stored_passkeys(server: LiveServer) -> list[dict[str, Any]]:
    with server.app.app_context():
        state = get_state(server.app)
        user = state.accounts.get_by_identity("ada")
        assert user is not None
        return [
            {"name": p.name, "sign_count": p.sign_count, "last_used_at": p.last_used_at}
            for p in state.passkeys.list_for(user)
        ]


def test_add_a_passkey_then_sign_in_with_the_button_without_a_password(
    device: Device, server: LiveServer
) -> None:
    page = device.page
    sign_in_with_password(page)
    add_passkey(page, "Laptop")
    # The first second factor comes with recovery codes, shown once.
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    first_codes = page.locator("ul.codes code").all_inner_texts()
    assert len(first_codes) == 10
    page.goto("/account/passkeys")
    expect(page.get_by_role("cell", name="Laptop")).to_be_visible()
    expect(page.get_by_text("10 unused recovery codes left")).to_be_visible()
    page.get_by_role("link", name="Make new recovery codes").click()
    expect(page.get_by_role("heading", name="Recovery codes", exact=True)).to_be_visible()
    expect(page.locator("main")).to_contain_text("You have 10 unused recovery codes")
    page.get_by_role("button", name="Make new recovery codes").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    new_codes = page.locator("ul.codes code").all_inner_texts()
    assert len(new_codes) == 10
    assert not set(new_codes) & set(first_codes)
    page.goto("/account/passkeys")
    [credential] = device.credentials()
    assert credential["isResidentCredential"] is True  # discoverable: usable without a name

    sign_out(page)
    page.goto("/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")
    expect(page.locator("main .card")).to_contain_text("You are signed in as ada")
    [stored] = stored_passkeys(server)
    assert stored["last_used_at"] is not None
    assert stored["sign_count"] > 0  # the virtual authenticator counts; the server follows


def test_the_login_page_offers_the_passkey_in_autofill(
    autofill_device: Device, server: LiveServer
) -> None:
    page = autofill_device.page
    sign_in_with_password(page)  # no passkey yet: autofill has nothing to offer
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")
    add_passkey(page, "Laptop")
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    sign_out(page)

    page.goto("/login")
    # Conditional UI: the username field lists passkeys among its suggestions, and
    # choosing one signs in; nobody pressed a button or typed a name.
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")
    expect(page.locator("main .card")).to_contain_text("You are signed in as ada")
    assert stored_passkeys(server)[0]["last_used_at"] is not None


def test_passkey_as_the_second_step_after_the_password(device: Device, server: LiveServer) -> None:
    page = device.page
    sign_in_with_password(page)
    add_passkey(page, "Laptop")
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    sign_out(page)

    sign_in_with_password(page)
    expect(page.get_by_role("heading", name="One more step")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("You are signed in")
    page.get_by_role("button", name="Use your passkey").click()
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")
    expect(page.locator("main .card")).to_contain_text("You are signed in as ada")


def test_a_removed_passkey_no_longer_signs_in(device: Device, server: LiveServer) -> None:
    page = device.page
    sign_in_with_password(page)
    add_passkey(page, "Old phone")
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    page.goto("/account/passkeys")
    page.get_by_role("row", name="Old phone").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_have_text("Passkey “Old phone” removed.")
    assert stored_passkeys(server) == []
    sign_out(page)

    # The authenticator still holds the credential; the site no longer knows it.
    assert device.credentials()
    page.goto("/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("alert")).to_contain_text("That passkey was not accepted")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # And the password alone signs in again: no second factor is left.
    sign_in_with_password(page)
    expect(page.get_by_role("status")).to_have_text("Signed in as ada.")


def test_a_passkey_confirms_it_is_you_before_a_sensitive_page(
    device: Device, server: LiveServer, clock: FakeClock
) -> None:
    page = device.page
    sign_in_with_password(page)
    add_passkey(page, "Laptop")
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    # Past the freshness window the page asks again; the passkey answers for the password.
    clock.advance(minutes=11)
    page.goto("/account/passkeys")
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    page.get_by_role("button", name="Confirm with a passkey").click()
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/account/passkeys")
