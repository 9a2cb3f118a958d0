"""Fixtures for the browser tests: Chromium through Playwright, and the demo app on a live server.

The tests are skipped when Chromium or the ``playwright`` package is missing,
unless ``PORTCULLIS_REQUIRE_BROWSER=1``, in which case they fail and say why
(CI sets it so a broken browser set-up cannot pass silently).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from flask import Flask, got_request_exception
from werkzeug.serving import BaseWSGIServer, make_server

from flask_portcullis import get_state

from ..conftest import FakeClock, Outbox, make_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "PORTCULLIS_REQUIRE_BROWSER"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every wait is bounded: a hung page fails the test in seconds, not minutes.
TIMEOUT_MS = 10_000
LAUNCH_TIMEOUT_MS = 30_000


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def playwright_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the Python package 'playwright' is not installed (pip install -e '.[dev]')"
    return None


def browser_missing() -> str | None:
    """Say what is missing for the browser tests, or None when everything is there."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return playwright_missing()


def unavailable(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip with ``reason``, or fail with it when the browser is required."""
    if browser_required():
        pytest.fail(f"browser tests cannot run: {reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(
        f"browser tests skipped: {reason} (set {REQUIRE_ENV}=1 to fail instead)",
        allow_module_level=allow_module_level,
    )


def require_playwright() -> None:
    """Call at the top of a browser test module, before it imports playwright.

    Without the package the module cannot even be imported: skip it whole (or, when
    the browser is required, fail its collection). A missing Chromium is found by
    the ``browser`` fixture instead, so each test reports it.
    """
    reason = playwright_missing()
    if reason is not None:
        unavailable(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole run; every test gets fresh contexts."""
    reason = browser_missing()
    if reason is not None:
        unavailable(reason)
    from playwright.sync_api import Error, expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                timeout=LAUNCH_TIMEOUT_MS,
            )
        except Error as exc:
            unavailable(f"Chromium at {CHROMIUM} did not start: {exc.message.splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class LiveServer:
    """The demo app served over real HTTP on 127.0.0.1 and an ephemeral port."""

    app: Flask
    url: str
    # Exceptions raised inside views: a test that ends cleanly asserts there were none.
    errors: list[BaseException] = field(default_factory=list)

    def record_error(self, sender: Flask, exception: BaseException, **extra: Any) -> None:
        self.errors.append(exception)

    def assert_no_server_errors(self) -> None:
        assert not self.errors, f"the server raised: {self.errors!r}"


@contextmanager
def serve(app: Flask) -> Iterator[LiveServer]:
    """Serve ``app`` over HTTP on 127.0.0.1 in a background thread, as ``live_server`` does."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    live = LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}")
    got_request_exception.connect(live.record_error, app, weak=False)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="live-server", daemon=True
    )
    thread.start()
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        got_request_exception.disconnect(live.record_error, app)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Serve a fresh demo app (own SQLite file, shipped migrations) in a background thread.

    Cookies stay Secure (the production default, PORTCULLIS_SECURE_COOKIES=True):
    Chromium counts http://127.0.0.1 as a secure context (loopback is "potentially
    trustworthy"), so it stores Secure cookies from it and sends them back. The
    journey asserts this, so if a browser ever stops doing so the test says why.
    """
    app = make_app(tmp_path)
    try:
        with serve(app) as live:
            yield live
    finally:
        with app.app_context():
            get_state(app).db.engine.dispose()


NewContext = Callable[[], "BrowserContext"]


@pytest.fixture
def new_context(browser: Browser, live_server: LiveServer) -> Iterator[NewContext]:
    """Make fresh browser contexts (separate cookie jars: separate "devices") on the live server."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        # Nothing but the live server: any other request is a bug in the page or the test.
        context.route(
            lambda url: not url.startswith(live_server.url + "/"),
            lambda route: route.abort("blockedbyclient"),
        )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


# -- a live server whose mail goes to the test SMTP server -----------------------------


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Extra settings for ``mail_live_server``; a test overrides it with
    ``@pytest.mark.parametrize("app_config", [{...}])``."""
    return {}


@pytest.fixture
def mail_live_server(
    tmp_path: Path,
    clock: FakeClock,
    outbox: Outbox,
    smtp_server: tuple[Outbox, int],
    app_config: dict[str, Any],
) -> Iterator[LiveServer]:
    """Like ``live_server``, but the app sends its mail over SMTP to ``outbox`` and runs on
    ``clock`` (a FakeClock the test can move), with ``app_config`` on top."""
    app = make_app(tmp_path, clock, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server[1], **app_config)
    try:
        with serve(app) as live:
            yield live
    finally:
        with app.app_context():
            state = get_state(app)
            state.notifier.shutdown()  # let background mail finish before the database goes
            state.db.engine.dispose()


@pytest.fixture
def mail_context(browser: Browser, mail_live_server: LiveServer) -> Iterator[NewContext]:
    """``new_context`` for ``mail_live_server``: fresh contexts that reach only that server."""
    contexts: list[BrowserContext] = []
    base = mail_live_server.url

    def make() -> BrowserContext:
        context = browser.new_context(base_url=base)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.route(
            lambda url: not url.startswith(base + "/"),
            lambda route: route.abort("blockedbyclient"),
        )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
