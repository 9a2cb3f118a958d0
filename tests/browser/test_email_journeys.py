"""The email journeys in a real Chromium, with the mail received by a real SMTP server.

The app (``mail_live_server``) sends over SMTP to aiosmtpd on 127.0.0.1 (the
``outbox``); each test reads the links out of the mail it received and opens
them in the browser, as a user would. The app runs on a FakeClock (``clock``),
so the time in security notices is known exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from .conftest import LiveServer, NewContext, require_playwright

require_playwright()  # skips (or fails, if required) before playwright is imported

from playwright.sync_api import (  # noqa: E402
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
)

from ..conftest import PASSWORD, FakeClock, Mail, Outbox, make_user  # noqa: E402
from .test_journey import (  # noqa: E402
    BAD_CREDENTIALS,
    PageProblems,
    expect_home_signed_in_as,
    expect_sent_to_login,
    register,
    sign_in,
)

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase"
SITE = "Portcullis demo"
USED_LINK = "This link has already been used or is no longer valid."
# Chromium's console line for a page or resource that answered with an error status.
LOAD_FAILED = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


# -- page health: only the 4xx answers the journey expects ---------------------------


@dataclass
class Watch(PageProblems):
    """PageProblems that lets through the error statuses a test announced with ``allow``.

    A form with errors answers 422 and a used link 400 on purpose; Chromium
    reports each as a failed load on the console. Anything else (another
    status, another path, a script error, a CSP violation, a blocked request)
    still counts.
    """

    allowed: set[tuple[str, int]] = field(default_factory=set)

    def allow(self, path: str, status: int) -> None:
        self.allowed.add((path, status))

    def _expected(self, url: str, status: int) -> bool:
        return (urlsplit(url).path, status) in self.allowed

    def on_console(self, message: ConsoleMessage) -> None:
        load = LOAD_FAILED.match(message.text)
        if load and self._expected(message.location.get("url", ""), int(load.group(1))):
            return
        super().on_console(message)

    def on_response(self, response: Response) -> None:
        if not self._expected(response.url, response.status):
            super().on_response(response)

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.failed == []


def open_page(context: BrowserContext) -> tuple[Page, Watch]:
    page = context.new_page()
    watch = Watch()
    watch.watch(page)
    return page, watch


# -- mail ----------------------------------------------------------------------------


def only_mail(outbox: Outbox, address: str, count: int) -> Mail:
    """Wait (bounded) for the ``count``-th mail to ``address``; it must be the last one."""
    mails = outbox.wait_for(address, count=count)
    assert len(mails) == count, [m.subject for m in mails]
    return mails[-1]


def mail_link(mail: Mail, live: LiveServer, prefix: str) -> str:
    """The path of the ``prefix`` link in ``mail``: absolute to the live server, in both parts."""
    path = mail.link(prefix)
    url = live.url + path
    assert url in mail.text
    assert f'href="{url}"' in mail.html, mail.html
    return path


def expect_device_notice(mail: Mail, clock: FakeClock, user_agent: str) -> None:
    """A security notice names when, from which IP and in which browser, in text and HTML."""
    when = f"When: {clock.now:%Y-%m-%d %H:%M} UTC"
    for part in (mail.text, mail.html):
        assert when in part
        assert "From IP address: 127.0.0.1" in part
        assert f"Browser: {user_agent}" in part


def open_link(page: Page, path: str, heading: str, status: int = 200) -> Response:
    """Open an emailed link: its page never leaks the token through the Referer header."""
    response = page.goto(path)
    assert response is not None
    assert response.status == status, f"{path}: {response.status}"
    assert response.headers.get("referrer-policy") == "no-referrer", response.headers
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    return response


def record_referers(context: BrowserContext) -> list[str]:
    """Every Referer header the browser sends from now on."""
    referers: list[str] = []

    def on_request(request: Request) -> None:
        referer = request.headers.get("referer")
        if referer:
            referers.append(f"{request.method} {request.url} <- {referer}")

    context.on("request", on_request)
    return referers


def expect_account(page: Page, email: str, *, verified: bool) -> None:
    page.goto("/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    details = page.locator("dl.details")
    expect(details).to_contain_text(email)
    badge = details.locator(".badge")
    expect(badge).to_have_text("verified" if verified else "not verified")
    resend = details.get_by_role("button", name="Send confirmation link")
    expect(resend).to_have_count(0 if verified else 1)


# -- 1. forgot password --------------------------------------------------------------


def test_forgot_password_end_to_end(
    mail_live_server: LiveServer, mail_context: NewContext, outbox: Outbox, clock: FakeClock
) -> None:
    live, base = mail_live_server, mail_live_server.url
    address = "ada@example.com"
    make_user(live.app, "ada", address, PASSWORD)
    # Another device, signed in before the reset: the reset will end its session.
    phone = mail_context().new_page()
    sign_in(phone, "ada", PASSWORD)
    expect_home_signed_in_as(phone, base, "ada", address)

    context = mail_context()
    referers = record_referers(context)
    page, watch = open_page(context)
    user_agent = page.evaluate("navigator.userAgent")
    assert isinstance(user_agent, str)

    # Ask for a link from the sign-in page.
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page).to_have_url(f"{base}/forgot-password")
    expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    page.get_by_label("Email address", exact=True).fill(address)
    page.get_by_role("button", name="Send me a link").click()
    expect(page).to_have_url(f"{base}/forgot-password")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    expect(page.locator("main .card")).to_contain_text(
        "If an account uses that address, we have sent it a link to choose a new password."
    )

    # The mail (sent in the background) links to the reset page on this server.
    mail = only_mail(outbox, address, 1)
    assert mail.subject == f"Reset your password · {SITE}"
    assert "The link works once, for 60 minutes." in mail.text
    link = mail_link(mail, live, "/reset-password/")
    token = link.rsplit("/", 1)[1]

    # Opening it shows the form (and uses nothing up); choose a new password.
    open_link(page, link, "Choose a new password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat new password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set new password").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.get_by_role("status")).to_have_text(
        "Your password is reset and every device was signed out. Sign in now."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    # The notice: when, where from, which browser, and where to reset again.
    notice = only_mail(outbox, address, 2)
    assert notice.subject == f"Your password was reset · {SITE}"
    assert "reset through an emailed link, and every device was signed out" in notice.text
    expect_device_notice(notice, clock, user_agent)
    mail_link(notice, live, "/forgot-password")

    # The link works once: opened again it is refused, with a way to ask for a new one.
    watch.allow(link, 400)
    open_link(page, link, "This link cannot be used", status=400)
    expect(page.locator("main .card")).to_contain_text(USED_LINK)
    page.get_by_role("link", name="Send me a new link").click()
    expect(page).to_have_url(f"{base}/forgot-password")
    expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")

    # The old password is refused, the new one signs in; the other device was signed out.
    watch.allow("/login", 422)
    sign_in(page, "ada", PASSWORD)
    expect(page.locator(".form-errors[role=alert]")).to_have_text(BAD_CREDENTIALS)
    sign_in(page, "ada", NEW_PASSWORD)
    expect_home_signed_in_as(page, base, "ada", address)
    expect_sent_to_login(phone, base)

    assert referers, "no Referer seen at all: the recorder is broken"
    assert [r for r in referers if token in r] == []
    assert len(outbox.to(address)) == 2
    watch.assert_clean()
    live.assert_no_server_errors()


# -- 2. verification required --------------------------------------------------------


@pytest.mark.parametrize(
    "app_config", [{"PORTCULLIS_EMAIL_VERIFICATION": "required"}], ids=["required"]
)
def test_verification_required_before_sign_in(
    mail_live_server: LiveServer, mail_context: NewContext, outbox: Outbox, clock: FakeClock
) -> None:
    live, base = mail_live_server, mail_live_server.url
    address = "grace@example.com"
    context = mail_context()
    page, watch = open_page(context)
    nav = page.get_by_role("navigation", name="Main")

    # Register: told to check the inbox, and not signed in.
    register(page, "grace", address, PASSWORD, PASSWORD)
    expect(page).to_have_url(f"{base}/register")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    expect(page.locator("main .card")).to_contain_text(
        f"We sent a confirmation link to {address}. Follow it, then sign in."
    )
    expect(nav.get_by_role("link", name="Sign in")).to_be_visible()
    expect(nav.get_by_role("button", name="Sign out")).to_have_count(0)
    first = only_mail(outbox, address, 1)
    assert first.subject == f"Confirm your email address · {SITE}"
    assert f"Please confirm that {address} is your email address" in first.text
    first_link = mail_link(first, live, "/verify-email/")

    # Signing in is refused, with a button for a new link; it sends a second mail.
    watch.allow("/login", 422)
    sign_in(page, "grace", PASSWORD)
    expect(page).to_have_url(f"{base}/login")
    expect(page.locator(".form-errors[role=alert]")).to_have_text(
        "Confirm your email address before signing in."
    )
    expect(nav.get_by_role("button", name="Sign out")).to_have_count(0)
    clock.advance(minutes=1)  # so the new link differs from the first
    page.get_by_role("button", name="Send me a new confirmation link").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.get_by_role("status")).to_have_text(
        "If g***@example.com still needs confirming, a new link is on its way."
    )
    second = only_mail(outbox, address, 2)
    assert second.subject == f"Confirm your email address · {SITE}"
    link = mail_link(second, live, "/verify-email/")
    assert link != first_link

    # Follow it: a page with a button (opening the link alone changes nothing), then sign in.
    open_link(page, link, "Confirm your email address")
    page.get_by_role("button", name="Confirm my address").click()
    expect(page).to_have_url(f"{base}/login")
    expect(page.get_by_role("status")).to_have_text("Thank you: your email address is confirmed.")
    sign_in(page, "grace", PASSWORD)
    expect_home_signed_in_as(page, base, "grace", address)
    expect_account(page, address, verified=True)

    # The earlier link is dead now that the address is confirmed, and says so at once.
    watch.allow(first_link, 400)
    open_link(page, first_link, "This link cannot be used", status=400)
    expect(page.locator("main .card")).to_contain_text(USED_LINK)
    expect(page.get_by_role("button", name="Confirm my address")).to_have_count(0)

    assert len(outbox.to(address)) == 2
    watch.assert_clean()
    live.assert_no_server_errors()


# -- 3. email change -----------------------------------------------------------------


def test_change_email_confirmed_on_the_new_address(
    mail_live_server: LiveServer, mail_context: NewContext, outbox: Outbox, clock: FakeClock
) -> None:
    live, base = mail_live_server, mail_live_server.url
    old, new = "linus@example.com", "nils@example.com"
    make_user(live.app, "linus", old, PASSWORD, verified=True)
    context = mail_context()
    page, watch = open_page(context)
    user_agent = page.evaluate("navigator.userAgent")
    assert isinstance(user_agent, str)
    sign_in(page, "linus", PASSWORD)
    expect_home_signed_in_as(page, base, "linus", old)

    # Account → Change email address: the new address and the current password.
    expect_account(page, old, verified=True)
    page.get_by_role("link", name="Change email address").click()
    expect(page).to_have_url(f"{base}/account/email")
    expect(page.get_by_role("heading", level=1)).to_have_text("Change email address")
    expect(page.locator("main form")).to_contain_text(f"Your address is {old}.")
    page.get_by_label("New email address", exact=True).fill(new)
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Send confirmation link").click()
    expect(page).to_have_url(f"{base}/account")
    expect(page.get_by_role("status")).to_have_text(
        "We sent a confirmation link to n***@example.com. Your address changes when you follow it."
    )

    # The new address gets the link; the old one a notice naming the new one, masked.
    confirm = only_mail(outbox, new, 1)
    assert confirm.subject == f"Confirm your new email address · {SITE}"
    link = mail_link(confirm, live, "/confirm-email/")
    notice = only_mail(outbox, old, 1)
    assert notice.subject == f"Your email address is about to change · {SITE}"
    assert "asked to change its email address to n***@example.com." in notice.text
    assert "<strong>n***@example.com</strong>" in notice.html
    for part in (notice.text, notice.html):
        assert new not in part
    expect_device_notice(notice, clock, user_agent)
    mail_link(notice, live, "/forgot-password")

    # Until the link is followed, the account keeps the old address.
    expect_account(page, old, verified=True)
    expect(page.locator("dl.details")).not_to_contain_text(new)

    # Follow it and confirm: the new address is the account's, verified.
    open_link(page, link, "Confirm your new email address")
    page.get_by_role("button", name="Use this address").click()
    expect(page).to_have_url(f"{base}/account")
    expect(page.get_by_role("status")).to_have_text(f"Your email address is now {new}.")
    expect(page.locator("dl.details")).not_to_contain_text(old)
    expect_account(page, new, verified=True)
    expect(page.locator("dl.details")).not_to_contain_text(old)

    # Used once: the link is refused the second time.
    watch.allow(link, 400)
    open_link(page, link, "This link cannot be used", status=400)
    expect(page.locator("main .card")).to_contain_text(USED_LINK)
    expect(page.get_by_role("button", name="Use this address")).to_have_count(0)
    expect(page.get_by_role("link", name="Start the change again")).to_have_attribute(
        "href", "/account/email"
    )

    assert len(outbox.mails) == 2
    watch.assert_clean()
    live.assert_no_server_errors()


def test_reset_link_sent_to_the_old_address_dies_with_the_email_change(
    mail_live_server: LiveServer, mail_context: NewContext, outbox: Outbox
) -> None:
    live, base = mail_live_server, mail_live_server.url
    old, new = "linus@example.com", "nils@example.com"
    make_user(live.app, "linus", old, PASSWORD, verified=True)
    page, watch = open_page(mail_context())
    sign_in(page, "linus", PASSWORD)
    expect_home_signed_in_as(page, base, "linus", old)

    # Someone who reads the old mailbox asks for a reset link and keeps it.
    snoop, snoop_watch = open_page(mail_context())
    snoop.goto("/forgot-password")
    snoop.get_by_label("Email address", exact=True).fill(old)
    snoop.get_by_role("button", name="Send me a link").click()
    expect(snoop.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    reset_link = mail_link(only_mail(outbox, old, 1), live, "/reset-password/")

    # The owner, still signed in, moves the account to a new address.
    page.goto("/account/email")
    page.get_by_label("New email address", exact=True).fill(new)
    page.get_by_label("Current password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Send confirmation link").click()
    expect(page).to_have_url(f"{base}/account")
    open_link(
        page,
        mail_link(only_mail(outbox, new, 1), live, "/confirm-email/"),
        "Confirm your new email address",
    )
    page.get_by_role("button", name="Use this address").click()
    expect(page.get_by_role("status")).to_have_text(f"Your email address is now {new}.")
    watch.assert_clean()

    # The old mailbox must no longer be able to take the account over.
    snoop_watch.allow(reset_link, 400)
    open_link(snoop, reset_link, "This link cannot be used", status=400)
