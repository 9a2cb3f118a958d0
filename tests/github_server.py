"""A stand-in for GitHub's OAuth app endpoints, answering as GitHub documents them ("Authorizing
OAuth apps", "Troubleshooting OAuth app access token request errors", and the REST API's
``GET /user`` and ``GET /user/emails``), for the tests of the ``github`` preset.

One Flask app serves both of GitHub's hosts: the web flow (``/login/oauth/authorize``,
``/login/oauth/access_token``) and the API (``/user``, ``/user/emails``). Where GitHub shows a
person a page (who signs in, whether to authorize the app), this server shows a small form:
``login`` names the user, ``action=deny`` refuses. ``identity_providers.py`` runs it.

Known simplifications: the redirect URI rule is GitHub's strict one (same scheme, host and port
as the callback URL, path at or below it) without its loopback port exception; GitHub does not
document the error for a wrong PKCE ``code_verifier``, so this server answers
``bad_verification_code`` as for any code that does not match its authorization request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, jsonify, redirect, request
from werkzeug.wrappers import Response

CODE_LIFETIME = 600.0  # GitHub: "codes expire after 10 minutes"
DOCS = "https://docs.github.com"
TOKEN_ERRORS_DOC = (
    f"{DOCS}/apps/oauth-apps/maintaining-oauth-apps/"
    "troubleshooting-oauth-app-access-token-request-errors"
)
# The access token endpoint's errors (HTTP 200, as GitHub answers them).
INCORRECT_CLIENT_CREDENTIALS = (
    "incorrect_client_credentials",
    "The client_id and/or client_secret passed are incorrect.",
)
REDIRECT_URI_MISMATCH = (
    "redirect_uri_mismatch",
    "The redirect_uri MUST match the registered callback URL for this application.",
)
BAD_VERIFICATION_CODE = ("bad_verification_code", "The code passed is incorrect or expired.")
ACCESS_DENIED = ("access_denied", "The user has denied your application access.")
# Endpoints a test can make fail (``GitHubState.failing``), by Flask endpoint name.
ENDPOINTS = ("authorize", "access_token", "user", "user_emails")


@dataclass(frozen=True)
class GitHubEmail:
    """One of a user's addresses, as ``GET /user/emails`` lists it."""

    email: str
    primary: bool = False
    verified: bool = False
    visibility: str | None = None  # "public", "private", or None (GitHub's null)


@dataclass(frozen=True)
class GitHubUser:
    """A GitHub account: ``GET /user`` shows its public email (or null), ``/user/emails`` all."""

    id: int
    login: str
    name: str | None = None
    emails: tuple[GitHubEmail, ...] = ()

    @property
    def public_email(self) -> str | None:
        return next((e.email for e in self.emails if e.visibility == "public"), None)


@dataclass(frozen=True)
class OAuthApp:
    """A registered OAuth app: GitHub gives it one callback URL."""

    client_id: str
    client_secret: str
    callback_url: str


@dataclass(frozen=True)
class AuthorizationCode:
    client_id: str
    login: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    expires: float


@dataclass
class GitHubState:
    """What the server knows; tests change it between requests (under ``lock``)."""

    apps: dict[str, OAuthApp] = field(default_factory=dict)
    users: dict[str, GitHubUser] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token: (login, scope)
    failing: dict[str, int] = field(default_factory=dict)  # endpoint name: HTTP status
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            for table in (self.apps, self.users, self.codes, self.tokens, self.failing):
                table.clear()


def redirect_uri_allowed(given: str, callback: str) -> bool:
    """GitHub's rule: same scheme, host and port as the callback URL; the path at or below
    the callback's."""
    a, b = urlsplit(given), urlsplit(callback)
    if (a.scheme, a.netloc) != (b.scheme, b.netloc):
        return False
    base = b.path.rstrip("/")
    return a.path == b.path or a.path.startswith(base + "/")


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def s256(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def create_app(state: GitHubState) -> Flask:
    """The GitHub stand-in over ``state``."""
    app = Flask(__name__)

    @app.before_request
    def fail_when_asked() -> Response | None:
        status = state.failing.get((request.endpoint or "").removesuffix("_page"))
        if status is None:
            return None
        return Response("<h1>Unicorn! This page is taking too long to load.</h1>", status)

    def authorization_request() -> tuple[OAuthApp, str] | Response:
        """The app and redirect URI of an authorization request, or GitHub's answer to a bad
        one: 404 for an unknown client, a redirect to the callback URL for a foreign
        redirect_uri."""
        args = request.args
        oauth_app = state.apps.get(args.get("client_id", ""))
        if oauth_app is None:
            return Response("<h1>404 Not Found</h1>", 404)
        redirect_uri = args.get("redirect_uri") or oauth_app.callback_url
        if not redirect_uri_allowed(redirect_uri, oauth_app.callback_url):
            return error_redirect(oauth_app.callback_url, REDIRECT_URI_MISMATCH)
        method = args.get("code_challenge_method", "S256")
        if args.get("code_challenge") and method != "S256":
            return error_redirect(redirect_uri, ("invalid_request", "Unsupported method."))
        return oauth_app, redirect_uri

    def error_redirect(redirect_uri: str, error: tuple[str, str]) -> Response:
        params = {
            "error": error[0],
            "error_description": error[1],
            "error_uri": f"{DOCS}/apps/oauth-apps",
            "state": request.args.get("state"),
        }
        return redirect(with_query(redirect_uri, params), 302)

    @app.get("/login/oauth/authorize")
    def authorize_page() -> Response:
        checked = authorization_request()
        if isinstance(checked, Response):
            return checked
        options = "".join(
            f'<option value="{html.escape(login)}">{html.escape(login)}</option>'
            for login in state.users
        )
        page = (
            "<!doctype html><title>Authorize application</title>"
            f"<h1>Authorize {html.escape(checked[0].client_id)}</h1>"
            f"<p>Scopes: {html.escape(request.args.get('scope', ''))}</p>"
            '<form method="post"><select name="login">'
            f"{options}</select>"
            '<button name="action" value="authorize">Authorize</button>'
            '<button name="action" value="deny">Cancel</button></form>'
        )
        return Response(page, 200, mimetype="text/html")

    @app.post("/login/oauth/authorize")
    def authorize() -> Response:
        checked = authorization_request()
        if isinstance(checked, Response):
            return checked
        oauth_app, redirect_uri = checked
        if request.form.get("action") == "deny":
            return error_redirect(redirect_uri, ACCESS_DENIED)
        login = request.form.get("login", "")
        if login not in state.users:
            return Response(f"<h1>No user {html.escape(login)}</h1>", 400)
        code = secrets.token_hex(10)
        with state.lock:
            state.codes[code] = AuthorizationCode(
                client_id=oauth_app.client_id,
                login=login,
                redirect_uri=redirect_uri,
                scope=",".join(request.args.get("scope", "").split()),
                code_challenge=request.args.get("code_challenge"),
                expires=time.monotonic() + CODE_LIFETIME,
            )
        params = {"code": code, "state": request.args.get("state")}
        return redirect(with_query(redirect_uri, params), 302)

    def token_answer(fields: Mapping[str, str]) -> Response:
        """GitHub's format follows the Accept header: JSON when it names application/json,
        else a form body (also for ``*/*``)."""
        asked = {value for value, quality in request.accept_mimetypes if quality > 0}
        if "application/json" in asked:
            return jsonify(fields)
        return Response(urlencode(fields), 200, mimetype="application/x-www-form-urlencoded")

    def token_error(error: tuple[str, str]) -> Response:
        fields = {"error": error[0], "error_description": error[1], "error_uri": TOKEN_ERRORS_DOC}
        return token_answer(fields)

    @app.post("/login/oauth/access_token")
    def access_token() -> Response:
        params: dict[str, Any] = dict(request.args)
        body = request.get_json(silent=True) if request.is_json else request.form
        params.update(body or {})
        client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
        if request.authorization and request.authorization.type == "basic":
            client_id = request.authorization.username or ""
            client_secret = request.authorization.password or ""
        oauth_app = state.apps.get(str(client_id))
        if oauth_app is None or not hmac.compare_digest(
            oauth_app.client_secret.encode(), str(client_secret).encode()
        ):
            return token_error(INCORRECT_CLIENT_CREDENTIALS)
        with state.lock:
            code = state.codes.pop(str(params.get("code", "")), None)  # one use, even a failed one
        if code is None or code.client_id != oauth_app.client_id or code.expires < time.monotonic():
            return token_error(BAD_VERIFICATION_CODE)
        if params.get("redirect_uri") not in (None, code.redirect_uri):
            return token_error(REDIRECT_URI_MISMATCH)
        if code.code_challenge is not None:
            verifier = str(params.get("code_verifier", ""))
            if not verifier or not hmac.compare_digest(s256(verifier), code.code_challenge):
                return token_error(BAD_VERIFICATION_CODE)
        token = "gho_" + secrets.token_hex(18)
        with state.lock:
            state.tokens[token] = (code.login, code.scope)
        return token_answer({"access_token": token, "token_type": "bearer", "scope": code.scope})

    def bearer() -> tuple[GitHubUser, str] | Response:
        """The user and scopes of the request's token ("Bearer" or GitHub's "token" scheme)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not token:
            return api_error(401, "Requires authentication")
        grant = state.tokens.get(token.strip()) if scheme.lower() in ("bearer", "token") else None
        if grant is None:
            return api_error(401, "Bad credentials")
        return state.users[grant[0]], grant[1]

    def api_error(status: int, message: str) -> Response:
        response = jsonify(
            {"message": message, "documentation_url": f"{DOCS}/rest", "status": str(status)}
        )
        response.status_code = status
        return response

    @app.get("/user")
    def user() -> Response:
        found = bearer()
        if isinstance(found, Response):
            return found
        account, scope = found
        response = jsonify(
            {
                "login": account.login,
                "id": account.id,
                "node_id": f"U_{account.id}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{account.id}",
                "html_url": f"https://github.com/{account.login}",
                "type": "User",
                "site_admin": False,
                "name": account.name,
                "email": account.public_email,
            }
        )
        response.headers["X-OAuth-Scopes"] = scope.replace(",", ", ")
        return response

    @app.get("/user/emails")
    def user_emails() -> Response:
        found = bearer()
        if isinstance(found, Response):
            return found
        account, scope = found
        if not {"user", "user:email"} & set(scope.split(",")):
            # GitHub answers 404, not 403, when the token lacks the scope.
            return api_error(404, "Not Found")
        response = jsonify(
            [
                {
                    "email": e.email,
                    "primary": e.primary,
                    "verified": e.verified,
                    "visibility": e.visibility,
                }
                for e in account.emails
            ]
        )
        response.headers["X-OAuth-Scopes"] = scope.replace(",", ", ")
        return response

    return app
