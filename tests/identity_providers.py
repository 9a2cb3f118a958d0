"""Real identity providers on 127.0.0.1 for the sign-in tests, as pytest fixtures.

- ``oidc_provider`` (one per run): panva's ``oidc-provider`` for Node, an OpenID Certified
  provider (``tests/oidc_provider/server.mjs``), in its own process on a free port, stopped by
  its PID. Discovery, JWKS, dynamic client registration (RFC 7591), PKCE (S256, required of
  every client), nonce, ``iss`` in every authorization response (RFC 9207), ``state`` on
  errors too, single-use codes. Around it: a consent step a test answers over HTTP, and faults
  a test switches on (a failing token endpoint, forged ID tokens).
- ``github_provider`` (fresh for each test): a small server answering GitHub's OAuth and user
  endpoints as GitHub documents them (``github_server.py``), in a thread of this process.

If Node or the provider's package is missing, the tests that need it are skipped with a message
saying how to install it, or fail when ``PORTCULLIS_REQUIRE_SERVICES=1`` (CI) is set.

A test that signs in through the app (the product's names may differ)::

    def test_sign_in(make_demo_app, oidc_provider):
        callback = "http://localhost/login/oauth/idp/callback"
        registered = oidc_provider.register_client([callback])
        app = make_demo_app(PORTCULLIS_OAUTH_PROVIDERS={"idp": {
            "server_metadata_url": oidc_provider.metadata_url,
            "client_id": registered.client_id,
            "client_secret": registered.client_secret,
        }})
        browser = app.test_client()
        token = csrf_token(browser, "/login")  # the "Sign in with" button's form
        start = browser.post("/login/oauth/idp", data={"csrf_token": token})
        user = OidcUser("ada-1", "ada@example.com", email_verified=True, name="Ada")
        back = oidc_provider.consent(start.headers["Location"], user)
        page = browser.get(back)  # the callback, with code, state and iss
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .conftest import free_port
from .github_server import GitHubEmail, GitHubState, GitHubUser, OAuthApp, create_app
from .servers import AppServer
from .services import REQUIRE_SERVICES, services_required

__all__ = [
    "HTTP",
    "GitHubEmail",
    "GitHubProvider",
    "GitHubUser",
    "OAuthClient",
    "OidcProvider",
    "OidcUser",
    "ProviderPage",
    "dead_url",
    "github_provider",
    "oidc_provider",
]

OIDC_PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
INSTALL_HINT = "npm ci --prefix tests/oidc_provider (make install-dev runs it when npm is there)"
STARTUP_TIMEOUT = 30.0
PORT_TRIES = 3
REQUEST_TIMEOUT = 10.0
MAX_HOPS = 10  # redirects within the provider before it sends the browser back


class ProviderPage(Exception):
    """The provider answered with a page of its own instead of sending the browser back to the
    app (an unknown client, a redirect URI it does not accept, ...)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.text = response.text
        super().__init__(f"{response.request.url} answered {self.status}: {self.text[:500]}")


@dataclass(frozen=True)
class OAuthClient:
    """A client (our app) as a provider registered it."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class OidcUser:
    """Who signs in at the OpenID Connect provider, and the claims it asserts about them."""

    sub: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    preferred_username: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {"email_verified": self.email_verified, **self.extra}
        for name in ("email", "name", "preferred_username"):
            value = getattr(self, name)
            if value is not None:
                claims[name] = value
        return claims


def unavailable(reason: str) -> NoReturn:
    """Skip (or, under ``PORTCULLIS_REQUIRE_SERVICES=1``, fail) because a provider cannot run."""
    if services_required():
        pytest.fail(
            f"{reason}; {REQUIRE_SERVICES}=1 is set, so this is a failure, not a skip",
            pytrace=False,
        )
    pytest.skip(f"{reason}; set {REQUIRE_SERVICES}=1 to make this a failure")


def dead_url(path: str = "/") -> str:
    """A URL on 127.0.0.1 where nothing listens: a connection to it is refused (a provider
    endpoint that is down, e.g. as ``access_token_url``)."""
    return f"http://127.0.0.1:{free_port()}{path}"


# One connection pool under every client below: a client of its own would build a TLS context
# (~40 ms) that these plain-HTTP providers on 127.0.0.1 never use.
TRANSPORT = httpx.HTTPTransport()


def browser() -> httpx.Client:
    """A fresh browser (its own cookie jar) that does not follow redirects. Not closed after
    use: closing a client closes the shared pool."""
    return httpx.Client(transport=TRANSPORT, timeout=REQUEST_TIMEOUT, follow_redirects=False)


# For the requests that need no cookie jar of their own (tests may use it too).
HTTP = browser()


@pytest.fixture(scope="session", autouse=True)
def http_pool() -> Iterator[None]:
    """Close the shared pool's connections when the run ends."""
    yield
    TRANSPORT.close()


# -- the OpenID Connect provider ------------------------------------------------------------


@dataclass
class OidcProvider:
    """The running provider: its addresses, clients, consent step and faults."""

    server: AppServer

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def metadata(self) -> dict[str, Any]:
        """The discovery document (OpenID Connect Discovery 1.0)."""
        response = HTTP.get(self.metadata_url)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def register_client(
        self,
        redirect_uris: Sequence[str],
        *,
        token_endpoint_auth_method: str = "client_secret_basic",
    ) -> OAuthClient:
        """Register a confidential client by RFC 7591 dynamic registration."""
        response = HTTP.post(
            f"{self.issuer}/reg",
            json={
                "redirect_uris": list(redirect_uris),
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": token_endpoint_auth_method,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return OAuthClient(body["client_id"], body["client_secret"], tuple(body["redirect_uris"]))

    def consent(self, authorization_url: str, user: OidcUser) -> str:
        """Sign in at the provider as ``user`` and consent to everything asked; return where
        the provider sends the browser back (``redirect_uri`` with ``code``, ``state`` and
        ``iss``, or with ``error`` if the provider refused the request itself, such as a
        missing PKCE challenge). Raises ``ProviderPage`` if it shows a page instead."""
        return self._walk(authorization_url, {"sub": user.sub, "claims": user.claims()})

    def deny(
        self,
        authorization_url: str,
        error: str = "access_denied",
        description: str = "The user refused.",
    ) -> str:
        """Answer the consent step with an OAuth ``error`` (``access_denied``, or any other:
        ``invalid_request``, ``temporarily_unavailable``, ...); return the redirect back to the
        app (``error``, ``error_description``, ``state``, ``iss``)."""
        return self._walk(authorization_url, {"error": error, "error_description": description})

    def _walk(self, authorization_url: str, answer: Mapping[str, Any]) -> str:
        origin = urlsplit(self.issuer).netloc
        client = browser()
        url = authorization_url
        for _ in range(MAX_HOPS):
            response = client.get(url)
            if not response.is_redirect:
                raise ProviderPage(response)
            url = urljoin(url, response.headers["location"])
            if urlsplit(url).netloc != origin:
                return url
            if urlsplit(url).path.startswith("/interaction/"):
                response = client.post(url, json=answer)
                if not response.is_redirect:
                    raise ProviderPage(response)
                url = urljoin(url, response.headers["location"])
        raise AssertionError(f"the provider did not send the browser back in {MAX_HOPS} hops")

    @contextmanager
    def token_endpoint_fails(
        self,
        mode: Literal["reset", "error", "garbage", "slow"] = "reset",
        *,
        status: int = 503,
        delay: float = 5.0,
    ) -> Iterator[None]:
        """While the block runs, the token endpoint fails: ``reset`` closes the connection with
        no answer (a network failure), ``error`` answers ``status`` with an HTML page,
        ``garbage`` answers 200 with HTML instead of JSON, ``slow`` answers after ``delay``
        seconds (for a client's timeout)."""
        faults: dict[str, dict[str, Any]] = {
            "reset": {"mode": "reset"},
            "error": {"mode": "status", "status": status},
            "garbage": {"mode": "status", "status": 200, "body": "<html>Welcome!</html>"},
            "slow": {"delay": delay},
        }
        with self._faults({"token_endpoint": faults[mode]}):
            yield

    @contextmanager
    def forged_id_tokens(
        self,
        *,
        claims: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        signature: Literal["provider", "foreign", "none"] = "provider",
    ) -> Iterator[None]:
        """While the block runs, the token endpoint's ID tokens are rewritten: ``claims`` set
        (e.g. ``aud``, ``iss``, ``exp``, ``iat``, ``nonce``, ``sub``), ``remove`` deleted, then
        signed by the provider's own key (``provider``: a valid signature over bad claims), by
        another key under the provider's ``kid`` (``foreign``: a bad signature), or not at all
        (``none``: ``alg: none``)."""
        forged = {"set": dict(claims or {}), "unset": list(remove), "signature": signature}
        with self._faults({"id_token": forged}):
            yield

    @contextmanager
    def _faults(self, faults: Mapping[str, Any]) -> Iterator[None]:
        url = f"{self.issuer}/_test/faults"
        HTTP.put(url, json=dict(faults)).raise_for_status()
        try:
            yield
        finally:
            HTTP.delete(url).raise_for_status()

    def stop(self) -> None:
        self.server.stop()


def oidc_provider_command(port: int) -> list[str]:
    node = shutil.which("node")
    assert node is not None
    return [node, str(OIDC_PROVIDER_DIR / "server.mjs"), "--port", str(port)]


def launch_oidc_provider(folder: Path) -> AppServer:
    port = free_port()
    log = folder / f"oidc-provider-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            oidc_provider_command(port),
            cwd=folder,
            env={**os.environ, "NODE_ENV": "test"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return AppServer("oidc-provider", port, process, log)


def wait_until_serving(provider: OidcProvider) -> bool:
    """Wait (bounded) for the discovery document; False if the port was taken."""
    server = provider.server
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            if "EADDRINUSE" in server.output():
                return False
            pytest.fail(f"the OpenID Connect provider exited at start-up:\n{server.output()}")
        try:
            if HTTP.get(provider.metadata_url, timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    pytest.fail(
        f"the OpenID Connect provider did not start in {STARTUP_TIMEOUT} s:\n{server.output()}"
    )


def start_oidc_provider(folder: Path) -> OidcProvider:
    """Start the provider on a free port (trying another if one was taken meanwhile)."""
    if shutil.which("node") is None:
        unavailable(
            f"Node.js is not installed (apt-get install -y nodejs npm, then {INSTALL_HINT})"
        )
    if not (OIDC_PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        unavailable(f"Node's oidc-provider is not installed: run {INSTALL_HINT}")
    for _ in range(PORT_TRIES):
        provider = OidcProvider(launch_oidc_provider(folder))
        try:
            if wait_until_serving(provider):
                return provider
        except BaseException:
            provider.stop()
            raise
    pytest.fail(f"the OpenID Connect provider found no free port in {PORT_TRIES} tries")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One OpenID Connect provider for the run; each test registers the clients it needs."""
    provider = start_oidc_provider(tmp_path_factory.mktemp("oidc-provider"))
    try:
        yield provider
    finally:
        provider.stop()


# -- GitHub -------------------------------------------------------------------------------


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class GitHubProvider:
    """The GitHub stand-in: point the ``github`` preset's ``authorize_url``,
    ``access_token_url`` and ``api_base_url`` here."""

    server: BaseWSGIServer
    state: GitHubState

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/login/oauth/authorize"

    @property
    def access_token_url(self) -> str:
        return f"{self.base_url}/login/oauth/access_token"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/"

    def register_app(self, callback_url: str) -> OAuthClient:
        """Register an OAuth app with its one callback URL."""
        app = OAuthApp("Ov23li" + secrets.token_hex(7), secrets.token_hex(20), callback_url)
        with self.state.lock:
            self.state.apps[app.client_id] = app
        return OAuthClient(app.client_id, app.client_secret, (callback_url,))

    def add_user(self, user: GitHubUser) -> GitHubUser:
        with self.state.lock:
            self.state.users[user.login] = user
        return user

    def consent(self, authorization_url: str, login: str) -> str:
        """Authorize the app as the user ``login``; return the redirect back to the app
        (``code`` and ``state``, or GitHub's ``error`` redirect for a bad request)."""
        return self._answer(authorization_url, {"login": login, "action": "authorize"})

    def deny(self, authorization_url: str) -> str:
        """Cancel at the authorization page: the redirect back carries
        ``error=access_denied`` and ``state``."""
        return self._answer(authorization_url, {"action": "deny"})

    def _answer(self, authorization_url: str, form: Mapping[str, str]) -> str:
        client = browser()
        page = client.get(authorization_url)
        if page.is_redirect:
            return urljoin(authorization_url, page.headers["location"])
        if page.status_code != 200:
            raise ProviderPage(page)
        response = client.post(authorization_url, data=dict(form))
        if not response.is_redirect:
            raise ProviderPage(response)
        return urljoin(authorization_url, response.headers["location"])

    @contextmanager
    def failing(
        self,
        endpoint: Literal["authorize", "access_token", "user", "user_emails"],
        status: int = 503,
    ) -> Iterator[None]:
        """While the block runs, ``endpoint`` answers ``status`` with an HTML page."""
        self.state.failing[endpoint] = status
        try:
            yield
        finally:
            self.state.failing.pop(endpoint, None)


@pytest.fixture(scope="session")
def github_server() -> Iterator[GitHubProvider]:
    """The GitHub stand-in's server, in a thread, for the run (``github_provider`` resets it)."""
    state = GitHubState()
    server = make_server(
        "127.0.0.1", 0, create_app(state), threaded=True, request_handler=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="github-provider", daemon=True)
    thread.start()
    try:
        yield GitHubProvider(server, state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STARTUP_TIMEOUT)


@pytest.fixture
def github_provider(github_server: GitHubProvider) -> GitHubProvider:
    """The GitHub stand-in with no apps, users, codes or tokens yet."""
    github_server.state.reset()
    return github_server
