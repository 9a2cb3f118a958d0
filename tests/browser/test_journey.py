"""A user's journey through the demo site in a real Chromium: what they see, what their cookies do.

Every context is a separate "device" with its own cookie jar. The app runs on
a live server (``live_server``) with its production cookie settings.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pytest

from .conftest import LiveServer, NewContext, require_playwright

require_playwright()  # skips (or fails, if required) before playwright is imported

from playwright.sync_api import (  # noqa: E402
    BrowserContext,
    ConsoleMessage,
    Cookie,
    Page,
    Request,
    Response,
    expect,
)

from ..conftest import PASSWORD, make_user  # noqa: E402

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a completely new passphrase"
BAD_CREDENTIALS = "Incorrect username, email or password."
DAY = 24 * 60 * 60


# -- what a user does --------------------------------------------------------


def register(page: Page, username: str, email: str, password: str, confirm: str) -> None:
    page.goto("/register")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password", exact=True).fill(confirm)
    page.get_by_role("button", name="Create account").click()


def sign_in(page: Page, identity: str, password: str, *, remember: bool = False) -> None:
    """Fill in the sign-in form on the current page (go to /login first if not there)."""
    if not page.url.split("?")[0].endswith("/login"):
        page.goto("/login")
    page.get_by_label("Username or email", exact=True).fill(identity)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Keep me signed in on this device").set_checked(remember)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_out(page: Page) -> None:
    """Press the nav's "Sign out" button (a POST form) and see the signed-out home page."""
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.locator("main")).to_contain_text("You are not signed in.")
    expect(nav.get_by_role("link", name="Sign in")).to_be_visible()


def expect_home_signed_in_as(page: Page, base: str, username: str, email: str) -> None:
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("main .card")).to_have_text(
        f"You are signed in as {username} ({email}). Your account."
    )
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name=username, exact=True)).to_be_visible()
    expect(nav.get_by_role("button", name="Sign out")).to_be_visible()


def expect_sent_to_login(page: Page, base: str) -> None:
    """Open /account and see the sign-in page, with ``next`` pointing back to it."""
    page.goto("/account")
    expect(page).to_have_url(f"{base}/login?next=%2Faccount")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Please sign in to see that page.")


def expect_account_page(page: Page, base: str, username: str, email: str) -> None:
    expect(page).to_have_url(f"{base}/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    details = page.locator("dl.details")
    expect(details).to_contain_text(username)
    expect(details).to_contain_text(email)


# -- cookies -----------------------------------------------------------------


def session_cookie(context: BrowserContext) -> Cookie:
    cookies = [c for c in context.cookies() if c.get("name") == "session"]
    assert len(cookies) == 1, f"expected one session cookie, got {context.cookies()!r}"
    return cookies[0]


def expect_session_cookie(context: BrowserContext, *, persistent: bool) -> Cookie:
    """Check the cookie's flags; a persistent one has an expiry, a browser-session one has none."""
    cookie = session_cookie(context)
    # Secure is kept on plain http://127.0.0.1: Chromium treats loopback as a secure context.
    assert cookie.get("secure") is True, cookie
    assert cookie.get("httpOnly") is True, cookie
    assert cookie.get("sameSite") == "Lax", cookie
    expires = cookie.get("expires", -1)
    if persistent:
        # "Keep me signed in" lasts weeks (30 days by default), not one browser session.
        assert time.time() + 7 * DAY < expires < time.time() + 400 * DAY, cookie
    else:
        assert expires == -1, f"expected a browser-session cookie, got {cookie!r}"
    return cookie


def replay(new_context: NewContext, cookie: Cookie) -> Page:
    """A fresh "device" that holds nothing but a copy of ``cookie``."""
    context = new_context()
    context.add_cookies(
        [
            {
                "name": cookie["name"],
                "value": cookie["value"],
                "domain": cookie["domain"],
                "path": cookie["path"],
                "expires": cookie["expires"],
                "httpOnly": cookie["httpOnly"],
                "secure": cookie["secure"],
                "sameSite": cookie["sameSite"],
            }
        ]
    )
    return context.new_page()


# -- the journey -------------------------------------------------------------


def test_register_sign_out_sign_in_and_old_sessions_stay_dead(
    live_server: LiveServer, new_context: NewContext
) -> None:
    base = live_server.url
    context = new_context()
    page = context.new_page()

    # (1) Register: land on the home page, signed in, on a browser-session cookie.
    register(page, "ada_l", "ada@example.com", PASSWORD, PASSWORD)
    expect_home_signed_in_as(page, base, "ada_l", "ada@example.com")
    expect(page.get_by_role("status")).to_have_text("Welcome, ada_l! Your account is ready.")
    expect_session_cookie(context, persistent=False)

    # (2) Sign out with the nav's button.
    sign_out(page)
    expect(page).to_have_url(f"{base}/")

    # (3) Sign in with "keep me signed in": the cookie now outlives the browser session.
    sign_in(page, "ada_l", PASSWORD, remember=True)
    expect_home_signed_in_as(page, base, "ada_l", "ada@example.com")
    expect(page.get_by_role("status")).to_have_text("Signed in as ada_l.")
    remembered = expect_session_cookie(context, persistent=True)
    sign_out(page)

    # (4) /account while anonymous goes to sign-in and comes back after it; signing in by
    # email, without "keep me signed in", gives a browser-session cookie.
    expect_sent_to_login(page, base)
    sign_in(page, "ADA@example.com", PASSWORD, remember=False)
    expect_account_page(page, base, "ada_l", "ada@example.com")
    current = expect_session_cookie(context, persistent=False)

    # (6) A copy of the live cookie works on another device (so the replay below is a
    # real test), but once the user signs out, neither it nor the earlier remember-me
    # cookie gets anyone in: the server ended those sessions.
    copy = replay(new_context, current)
    copy.goto("/account")
    expect_account_page(copy, base, "ada_l", "ada@example.com")
    page.goto("/")
    sign_out(page)
    expect_sent_to_login(page, base)
    for old in (current, remembered):
        expect_sent_to_login(replay(new_context, old), base)
    expect_sent_to_login(copy, base)

    live_server.assert_no_server_errors()


def test_change_password_signs_out_other_devices(
    live_server: LiveServer, new_context: NewContext
) -> None:
    base = live_server.url
    make_user(live_server.app, "grace", "grace@example.com", PASSWORD)
    laptop = new_context()
    phone = new_context()
    page = laptop.new_page()
    other = phone.new_page()
    sign_in(page, "grace", PASSWORD, remember=True)
    expect_home_signed_in_as(page, base, "grace", "grace@example.com")
    sign_in(other, "grace", PASSWORD)
    expect_home_signed_in_as(other, base, "grace", "grace@example.com")
    before = session_cookie(laptop)

    # (5) Change the password on the laptop: it stays signed in (still "remembered", on a
    # new session id); the phone, signed in before the change, is now anonymous.
    page.goto("/account")
    page.get_by_role("link", name="Change password").click()
    expect(page).to_have_url(f"{base}/account/password")
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password", exact=True).fill(NEW_PASSWORD)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Change password").click()
    assert posted.value.status == 302, (
        f"POST /account/password answered {posted.value.status}; "
        f"server errors: {live_server.errors!r}"
    )
    expect(page.get_by_role("status")).to_have_text(
        "Password changed. You were signed out everywhere else."
    )
    expect_account_page(page, base, "grace", "grace@example.com")
    after = expect_session_cookie(laptop, persistent=True)
    assert after["value"] != before["value"]
    expect_sent_to_login(other, base)
    page.goto("/account")
    expect_account_page(page, base, "grace", "grace@example.com")

    # (7) The old password no longer works; the new one does.
    fresh = new_context().new_page()
    sign_in(fresh, "grace", PASSWORD)
    expect(fresh).to_have_url(f"{base}/login")
    expect(fresh.get_by_role("alert")).to_have_text(BAD_CREDENTIALS)
    sign_in(fresh, "grace", NEW_PASSWORD)
    expect_home_signed_in_as(fresh, base, "grace", "grace@example.com")

    live_server.assert_no_server_errors()


# -- page health: console, CSP, form errors ----------------------------------

# Records CSP violations as the page sees them (init scripts are not subject to the CSP).
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@dataclass
class PageProblems:
    """Everything that went wrong while a page loaded, as the browser reported it."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("requestfailed", self.on_request_failed)
        page.on("response", self.on_response)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # Chromium asks every site for /favicon.ico on its own; the demo has none (404).
        if message.location.get("url", "").endswith("/favicon.ico"):
            return
        self.console_errors.append(f"{message.text} at {message.location}")

    def on_request_failed(self, request: Request) -> None:
        # A navigation (a form posted quickly) cancels the loads still under way, such as
        # the deferred passkeys.js: the browser stopped them, nothing failed.
        if request.failure == "net::ERR_ABORTED":
            return
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def on_response(self, response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.failed.append(f"{response.request.method} {response.url}: {response.status}")


def visit_cleanly(page: Page, path: str, heading: str) -> None:
    """Load ``path`` and check it arrived whole: 200, CSP header, stylesheet applied."""
    response = page.goto(path)
    assert response is not None
    assert response.status == 200, f"{path}: {response.status}"
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp, f"{path}: CSP is {csp!r}"
    assert "frame-ancestors 'none'" in csp, f"{path}: CSP is {csp!r}"
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    # portcullis.css sets body { margin: 0 }: proof the same-origin stylesheet was allowed.
    assert page.evaluate("getComputedStyle(document.body).marginTop") == "0px", path


def test_pages_load_without_console_errors_or_csp_violations(
    live_server: LiveServer, new_context: NewContext
) -> None:
    make_user(live_server.app, "ada", "ada@example.com", PASSWORD)
    context = new_context()
    context.add_init_script(CSP_PROBE)
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)

    anonymous = {
        "/": "Portcullis demo",
        "/login": "Sign in",
        "/register": "Create an account",
        "/logout": "Sign out",
    }
    for path, heading in anonymous.items():
        visit_cleanly(page, path, heading)
    sign_in(page, "ada", PASSWORD)
    expect_home_signed_in_as(page, live_server.url, "ada", "ada@example.com")
    signed_in = {
        "/": "Portcullis demo",
        "/account": "Your account",
        "/account/password": "Change password",
        "/account/delete": "Delete your account",
        "/logout": "Sign out",
    }
    for path, heading in signed_in.items():
        visit_cleanly(page, path, heading)
        assert page.evaluate("window.__cspViolations") == [], path
    sign_out(page)

    assert problems.console_errors == []
    assert problems.page_errors == []
    assert problems.failed == []
    assert page.evaluate("window.__cspViolations") == []

    # The detectors work and the CSP is enforced: an injected inline script is refused.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__inlineRan = true";
          document.body.append(script);
        }"""
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__inlineRan === undefined")
    assert page.evaluate("window.__cspViolations")[0].startswith("script-src")
    assert any("Content Security Policy" in text for text in problems.console_errors)
    live_server.assert_no_server_errors()


def expect_field_error(page: Page, label: str, name: str, message: str) -> None:
    """The message sits under the field, which is marked invalid and points to it."""
    field_input = page.get_by_label(label, exact=True)
    expect(field_input).to_have_attribute("name", name)
    expect(field_input).to_have_attribute("aria-invalid", "true")
    errors_id = f"{name}-errors"
    expect(field_input).to_have_attribute("aria-describedby", re.compile(rf"\b{errors_id}\b"))
    errors = page.locator(f".field.invalid:has(#{name}) #{errors_id}")
    expect(errors).to_have_text(message)


def test_form_errors_show_next_to_their_fields(
    live_server: LiveServer, new_context: NewContext
) -> None:
    base = live_server.url
    page = new_context().new_page()

    # Mismatched confirmation: 422, the message under "Repeat password", nothing else flagged.
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        register(page, "ada", "ada@example.com", PASSWORD, PASSWORD + "!")
    assert posted.value.status == 422
    expect(page).to_have_url(f"{base}/register")
    expect_field_error(page, "Repeat password", "password_confirm", "Passwords differ.")
    expect(page.get_by_label("Username", exact=True)).to_have_value("ada")
    expect(page.get_by_label("Username", exact=True)).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("[aria-invalid=true]")).to_have_count(1)

    # A rule the service enforces lands on its field too.
    register(page, "ada", "ada@example.com", "short", "short")
    expect_field_error(page, "Password", "password", "Use at least 8 characters.")

    # Wrong credentials: one generic message for the whole form, announced as an alert.
    make_user(live_server.app, "grace", "grace@example.com", PASSWORD)
    sign_in(page, "grace", "not the password")
    expect(page).to_have_url(f"{base}/login")
    expect(page.locator(".form-errors[role=alert]")).to_have_text(BAD_CREDENTIALS)

    # Wrong current password on the change-password page.
    sign_in(page, "grace", PASSWORD)
    page.goto("/account/password")
    page.get_by_label("Current password", exact=True).fill("not the password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect_field_error(
        page, "Current password", "current_password", "That is not your current password."
    )
    live_server.assert_no_server_errors()
