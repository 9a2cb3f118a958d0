"""Issue 14's acceptance in a real Chromium: with ``FLASK_PORTCULLIS_OAUTH_PROVIDERS`` naming a
local provider, as docs/federation.md tells a ``make run`` user, the demo shows the button, and
a person signs up, signs out and signs in again through the provider's own pages.

The demo runs as ``make run`` runs it (``flask db upgrade``, then Flask's debug server) in its
own process, configured by the environment only; the provider is Node's oidc-provider
(``oidc_provider``), whose HTML sign-in form the browser fills in. The client is registered
for the demo's port before the demo starts, since the demo's settings name the client.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import TIMEOUT_MS, require_playwright

require_playwright()  # skips (or fails, if required) before playwright is imported

from playwright.sync_api import Browser, BrowserContext, Page, Request, expect  # noqa: E402

from ..conftest import free_port  # noqa: E402
from ..identity_providers import OidcProvider  # noqa: E402
from ..servers import PORT_TRIES, AppServer, server_environment, wait_until_healthy  # noqa: E402
from .test_journey import PageProblems, expect_home_signed_in_as, sign_out  # noqa: E402

pytestmark = pytest.mark.browser

PROVIDER = "local"
LABEL = "Local ID"
SUBJECT = "ada-at-local-1"
EMAIL = "ada@example.com"
USERNAME = "ada"
MIGRATE_TIMEOUT = 60

# Reports every CSP violation to the test as it happens, on every page (init scripts are not
# subject to the CSP), so one on a page the browser leaves at once is not lost.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolation(location.href + ": " + event.violatedDirective + " " + event.blockedURI);
});
"""


# -- the demo, as `make run` starts it, and the provider it names --------------------------


def make_run(port: int) -> list[str]:
    """`make run`'s server (Makefile): the demo under Flask's debug server, one process."""
    flask = [sys.executable, "-m", "flask", "--app", "flask_portcullis.demo"]
    return [*flask, "run", "--debug", "--no-reload", "--host=127.0.0.1", f"--port={port}"]


def provider_settings(oidc_provider: OidcProvider, port: int) -> dict[str, object]:
    """Register a client for the demo on ``port`` and name it as docs/federation.md says."""
    callback = f"http://127.0.0.1:{port}/login/oauth/{PROVIDER}/callback"
    registered = oidc_provider.register_client([callback])
    return {
        PROVIDER: {
            "server_metadata_url": oidc_provider.metadata_url,
            "client_id": registered.client_id,
            "client_secret": registered.client_secret,
            "label": LABEL,
        }
    }


def start_demo(oidc_provider: OidcProvider, folder: Path, port: int) -> AppServer:
    config = {"PORTCULLIS_OAUTH_PROVIDERS": provider_settings(oidc_provider, port)}
    env = server_environment(config, folder / "instance")
    upgrade = [sys.executable, "-m", "flask", "--app", "flask_portcullis.demo", "db", "upgrade"]
    subprocess.run(
        upgrade, env=env, cwd=folder, check=True, capture_output=True, timeout=MIGRATE_TIMEOUT
    )
    log = folder / f"demo-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            make_run(port), env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    return AppServer("demo", port, process, log)


@pytest.fixture
def demo(oidc_provider: OidcProvider, tmp_path: Path) -> Iterator[AppServer]:
    """The demo on a port chosen first (the client's redirect URI names it), stopped by PID."""
    for _ in range(PORT_TRIES):
        server = start_demo(oidc_provider, tmp_path, free_port())
        try:
            if wait_until_healthy(server):
                break
        except BaseException:
            server.stop()
            raise
    else:
        pytest.fail(f"the demo found no free port in {PORT_TRIES} tries")
    try:
        yield server
    finally:
        server.stop()


# -- the browser ----------------------------------------------------------------------------


@pytest.fixture
def context(
    browser: Browser, demo: AppServer, oidc_provider: OidcProvider
) -> Iterator[BrowserContext]:
    """A browser that reaches the demo and the provider, and nothing else."""
    base = f"http://127.0.0.1:{demo.port}"
    allowed = (base + "/", oidc_provider.issuer + "/")
    context = browser.new_context(base_url=base)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.route(
        lambda url: not url.startswith(allowed), lambda route: route.abort("blockedbyclient")
    )
    try:
        yield context
    finally:
        context.close()


def press_provider_button(page: Page) -> None:
    page.goto("/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_role("button", name=f"Sign in with {LABEL}", exact=True).click()


def sign_in_at_provider(page: Page, oidc_provider: OidcProvider) -> None:
    """Fill in the provider's own sign-in form (tests/oidc_provider/server.mjs) and consent."""
    expect(page).to_have_url(re.compile(re.escape(f"{oidc_provider.issuer}/interaction/")))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sign in to ")
    page.get_by_label("sub", exact=True).fill(SUBJECT)
    page.get_by_label("email", exact=True).fill(EMAIL)
    page.get_by_label("email verified", exact=True).check()
    page.get_by_label("name", exact=True).fill("Ada Lovelace")
    page.get_by_label("preferred_username", exact=True).fill(USERNAME)
    page.get_by_role("button", name="Sign in", exact=True).click()


def expect_straight_back(visited: list[str]) -> None:
    """The provider's answer came back to the callback, which signed in: no sign-up page."""
    assert f"/login/oauth/{PROVIDER}/callback" in visited, visited
    assert f"/login/oauth/{PROVIDER}/signup" not in visited, visited


# -- the journey ----------------------------------------------------------------------------


def test_sign_up_sign_out_and_sign_in_again_through_a_local_provider(
    demo: AppServer, oidc_provider: OidcProvider, context: BrowserContext
) -> None:
    base = f"http://127.0.0.1:{demo.port}"
    violations: list[str] = []

    def report(violation: str) -> None:
        violations.append(violation)

    context.expose_function("cspViolation", report)
    context.add_init_script(CSP_REPORTER)
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    visited: list[str] = []  # every page the browser went to, redirects included

    def on_request(request: Request) -> None:
        if request.is_navigation_request():
            visited.append(urlsplit(request.url).path)

    page.on("request", on_request)

    # (1) The button is on the sign-in and sign-up pages; it is a form whose answer, a
    # redirect to the provider, the page's CSP allows (form-action).
    page.goto("/register")
    expect(page.get_by_role("button", name=f"Sign in with {LABEL}", exact=True)).to_be_visible()
    response = page.goto("/login")
    assert response is not None
    assert oidc_provider.issuer in response.headers["content-security-policy"]
    press_provider_button(page)

    # (2) The provider's page: sign in there as a new person, with a verified address.
    sign_in_at_provider(page, oidc_provider)

    # (3) Back on the demo: choose a username, the provider's suggestion filled in.
    expect(page).to_have_url(f"{base}/login/oauth/{PROVIDER}/signup")
    expect(page.get_by_role("heading", level=1)).to_have_text("Create your account")
    expect(page.locator("main")).to_contain_text(f"You signed in with {LABEL}.")
    expect(page.get_by_label("Username", exact=True)).to_have_value(USERNAME)
    expect(page.get_by_label("Email address", exact=True)).to_have_value(EMAIL)
    page.get_by_role("button", name="Create account").click()
    expect_home_signed_in_as(page, base, USERNAME, EMAIL)
    expect(page.get_by_role("status").filter(has_text="Welcome")).to_have_text(
        f"Welcome, {USERNAME}! Your account is ready."
    )

    # (4) Sign out with the nav's button.
    sign_out(page)

    # (5) Sign in again: the provider still knows the browser, so it sends it straight back,
    # and the link signs in at once; no sign-up page this time.
    before = len(visited)
    press_provider_button(page)
    expect_home_signed_in_as(page, base, USERNAME, EMAIL)
    expect(page.get_by_role("status")).to_have_text(f"Signed in as {USERNAME}.")
    expect_straight_back(visited[before:])
    sign_out(page)

    # (6) Signed out at the provider too (its cookies gone): its form again, then signed in.
    context.clear_cookies(name=re.compile("^_"))  # oidc-provider's: _session, _interaction
    before = len(visited)
    press_provider_button(page)
    sign_in_at_provider(page, oidc_provider)
    expect_home_signed_in_as(page, base, USERNAME, EMAIL)
    expect(page.get_by_role("status")).to_have_text(f"Signed in as {USERNAME}.")
    expect_straight_back(visited[before:])

    # Nothing went wrong on the way: no CSP violation, console error, failed load, or error
    # in the demo's log.
    assert violations == []
    assert problems.console_errors == []
    assert problems.page_errors == []
    assert problems.failed == []
    assert "Traceback" not in demo.log.read_text(errors="replace"), demo.output()

    # The detector works: an inline script injected into the demo's page is refused and
    # reported.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.inlineRan = true";
          document.body.append(script);
        }"""
    )
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not violations and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # lets Playwright deliver the page's report
    assert page.evaluate("window.inlineRan") is None
    assert len(violations) == 1, violations
    assert "script-src" in violations[0], violations
