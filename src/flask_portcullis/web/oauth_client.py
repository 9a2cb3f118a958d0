"""The protocol side of provider sign-in, through Authlib's Flask client: send the browser
to the provider, and turn its answer into an ``Identity`` or a ``ProviderFailed``.

Every check an attacker could otherwise slip past is made here, before any
account is looked at: the ``state`` bound to this browser and used once,
PKCE (S256) always, the OpenID ``nonce`` and ID token (signature by the
provider's JWKS, ``iss``, ``aud``, ``exp``, ``iat``), the RFC 9207 ``iss`` of
the answer, and a ``redirect_uri`` built from configuration.
"""

from __future__ import annotations

import hmac
import threading
import time
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from authlib.integrations.flask_client.apps import FlaskOAuth2App
from flask import Flask, current_app, request, session, url_for
from joserfc.errors import JoseError
from werkzeug.wrappers import Response

from ..exceptions import ProviderFailed
from ..federation import EMAIL_MAX, SUBJECT_MAX, Identity
from ..hosts import LOCAL_HOSTS
from ..providers import GITHUB, Provider
from ..state import get_state
from .keys import PROVIDER_FLOW

EXTENSION_KEY = "portcullis.oauth"
# A provider has this long to send the browser back (and a used state is remembered as long).
FLOW_LIFETIME = 15 * 60
TIMEOUT = 10  # seconds for each call to the provider: its token, JWKS and user endpoints
CHANGED = "This sign-in was started in another browser, took too long, or was used already."
UNVERIFIED = "The sign-in provider's answer could not be verified. Please try again."
# Clocks differ a little: the provider's auth_time may be this much before our "started".
AUTH_TIME_LEEWAY = 60
REAUTHENTICATE = "reauthenticate"
_lock = threading.Lock()


def providers() -> dict[str, Provider]:
    """The configured providers, by name, in the order configured."""
    return {p.name: p for p in get_state().settings.oauth_providers}


def _clients(app: Flask) -> OAuth:
    """This app's Authlib registry (its own: a host's Authlib instance is left alone)."""
    registry = app.extensions.get(EXTENSION_KEY)
    if registry is None:
        with _lock:
            registry = app.extensions.get(EXTENSION_KEY)
            if registry is None:
                registry = OAuth()
                registry.app = app  # not init_app: that would take the host's extension slot
                for provider in get_state(app).settings.oauth_providers:
                    registry.register(provider.name, **_client_options(provider))
                app.extensions[EXTENSION_KEY] = registry
    return registry


def _client_options(provider: Provider) -> dict[str, Any]:
    options: dict[str, Any] = {
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "client_kwargs": {
            "scope": provider.scope,
            "code_challenge_method": "S256",  # PKCE for every provider (RFC 9700 2.1.1)
            "default_timeout": TIMEOUT,
        },
    }
    if provider.server_metadata_url:
        options["server_metadata_url"] = provider.server_metadata_url
    for key in ("authorize_url", "access_token_url", "api_base_url"):
        if getattr(provider, key):
            options[key] = getattr(provider, key)
    return options


def client(name: str) -> FlaskOAuth2App:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = _clients(app).create_client(name)
    assert isinstance(found, FlaskOAuth2App), name
    return found


def redirect_uri(name: str) -> str:
    """Where the provider sends the browser back: from configuration, never from a Host
    header (PORTCULLIS_OAUTH_REDIRECT_BASE, else SERVER_NAME; with neither, the local
    default hosts only, which is where `make run` and the tests serve)."""
    path = url_for("portcullis.provider_callback", provider=name)
    base = get_state().settings.oauth_redirect_base.rstrip("/")
    if base:
        return base + path.removeprefix(request.script_root)
    if current_app.config.get("SERVER_NAME"):
        return url_for("portcullis.provider_callback", provider=name, _external=True)
    host = request.host.rpartition(":")[0] if ":" in request.host else request.host
    if get_state().hosts.source == "default" and host.strip("[]") in LOCAL_HOSTS:
        return request.host_url.rstrip("/") + path
    raise ProviderFailed(  # ruled out at start-up; kept so no path builds it from the Host
        "Sign-in with a provider is not set up on this address.", "redirect-uri"
    )


def start(name: str, intent: str, next_url: str | None) -> Response:
    """Send the browser to the provider; what it is for (``intent``) stays in this browser's
    session with the state, so only this browser can finish it.

    To re-authenticate, the provider is asked to sign the person in again
    (``prompt=login``, ``max_age=0``); its ID token must then say so (``auth_time``).
    """
    app = client(name)
    uri = redirect_uri(name)
    extra = {"prompt": "login", "max_age": 0} if intent == REAUTHENTICATE else {}
    try:
        answer = app.create_authorization_url(uri, **extra)
    except (requests.RequestException, AuthlibBaseError, RuntimeError, ValueError) as exc:
        raise ProviderFailed(
            "The sign-in provider cannot be reached. Please try again later.",
            f"discovery: {type(exc).__name__}",
            unreachable=True,
        ) from exc
    _forget_flows()  # one flow at a time: the signed cookie must not grow with each
    # Only what the callback needs (not the whole authorization URL: it rides in the cookie).
    kept = {key: answer[key] for key in ("code_verifier", "nonce") if key in answer}
    app.save_authorize_data(redirect_uri=uri, state=answer["state"], **kept)
    session[PROVIDER_FLOW] = {
        "provider": name,
        "state": answer["state"],
        "intent": intent,
        "next": next_url,
        "started": int(time.time()),  # the provider's clock, not the app's: auth_time
    }
    response = Response(status=302)
    response.headers["Location"] = answer["url"]
    return response


def _forget_flows() -> None:
    for name in providers():
        prefix = f"_state_{name}_"
        for key in [key for key in session if key.startswith(prefix)]:
            session.pop(key, None)


def finish(name: str) -> tuple[Identity, dict[str, Any]]:
    """Check the provider's answer on the callback and return who signed in there, with the
    flow this browser started (its ``intent`` and ``next``); or raise ProviderFailed."""
    flow = session.pop(PROVIDER_FLOW, None)
    state = request.args.get("state", "")
    app = client(name)
    try:
        return _finish(app, flow, state), flow
    finally:
        app.framework.clear_state_data(session, state)  # used or refused: gone either way


def _finish(app: FlaskOAuth2App, flow: Any, state: str) -> Identity:
    name = app.name
    if not (isinstance(flow, dict) and flow.get("provider") == name and state):
        raise ProviderFailed(CHANGED, "no-flow")
    if not hmac.compare_digest(str(flow.get("state", "")).encode(), state.encode()):
        raise ProviderFailed(CHANGED, "state")
    # Single use across every worker, even if the session cookie is replayed with it.
    if not get_state().throttle.claim_once("provider-state", f"{name}:{state}", FLOW_LIFETIME):
        raise ProviderFailed(CHANGED, "state-replayed")
    error = request.args.get("error")
    if error:
        if error == "access_denied":
            raise ProviderFailed("You cancelled the sign-in at the provider.", "access_denied")
        raise ProviderFailed(
            "The sign-in provider refused the request. Please try again.", f"error: {error[:64]}"
        )
    _check_issuer(app)
    try:
        token = app.authorize_access_token()
        if providers()[name].kind == GITHUB:
            return _github_identity(app, name)
        if flow.get("intent") == REAUTHENTICATE:
            _check_signed_in_again(token, int(flow.get("started", 0)))
        return _oidc_identity(token, name)
    except ProviderFailed:
        raise
    except requests.RequestException as exc:
        raise ProviderFailed(
            "The sign-in provider did not answer. Please try again later.",
            f"unreachable: {type(exc).__name__}",
            unreachable=True,
        ) from exc
    except (AuthlibBaseError, JoseError, ValueError, KeyError, TypeError) as exc:
        raise ProviderFailed(
            UNVERIFIED, f"invalid: {type(exc).__name__}: {str(exc)[:120]}"
        ) from exc


def _check_signed_in_again(token: dict[str, Any], started: int) -> None:
    """Re-authentication: the provider must have signed the person in after we asked
    (its ``auth_time``), not merely found them signed in (ASVS 3.7.1)."""
    claims = token.get("userinfo") or {}
    at = claims.get("auth_time")
    if not isinstance(at, int) or at < started - AUTH_TIME_LEEWAY:
        raise ProviderFailed(
            "The provider did not ask for your sign-in again. Please use your password.",
            "auth_time",
        )


def _check_issuer(app: FlaskOAuth2App) -> None:
    """RFC 9207: the answer names its issuer; a mix-up attack sends another's."""
    if not providers()[app.name].server_metadata_url:
        return  # GitHub's OAuth 2.0: no issuer to compare
    try:
        metadata = app.load_server_metadata()
    except requests.RequestException as exc:
        raise ProviderFailed(
            "The sign-in provider did not answer. Please try again later.",
            "unreachable: metadata",
            unreachable=True,
        ) from exc
    issuer = request.args.get("iss")
    if issuer is None:
        if metadata.get("authorization_response_iss_parameter_supported"):
            raise ProviderFailed(CHANGED, "iss-missing")
    elif issuer != metadata.get("issuer"):
        raise ProviderFailed(CHANGED, "iss")


def _oidc_identity(token: dict[str, Any], name: str) -> Identity:
    claims = token.get("userinfo")  # the ID token's claims, verified by Authlib
    if not claims:
        raise ProviderFailed(UNVERIFIED, "no-id-token")
    email = str(claims.get("email") or "")
    username = str(claims.get("preferred_username") or claims.get("nickname") or "")
    return _identity(
        name,
        str(claims["sub"]),
        email,
        claims.get("email_verified") in (True, "true"),
        username or email.partition("@")[0],
    )


def _github_identity(app: FlaskOAuth2App, name: str) -> Identity:
    """GitHub is OAuth 2.0 without OpenID: the user and their verified addresses come from
    its REST API (https://docs.github.com/en/rest/users)."""
    headers = {"Accept": "application/vnd.github+json"}
    user = app.get("user", headers=headers)
    user.raise_for_status()
    profile = user.json()
    emails = app.get("user/emails", headers=headers)
    emails.raise_for_status()
    listed = [e for e in emails.json() if isinstance(e, dict)]
    primary = next((e for e in listed if e.get("primary") and e.get("verified") is True), None)
    email = str(primary["email"]) if primary else str(profile.get("email") or "")
    return _identity(name, str(profile["id"]), email, primary is not None, str(profile["login"]))


def _identity(name: str, subject: str, email: str, verified: bool, username: str) -> Identity:
    if not subject or len(subject) > SUBJECT_MAX:
        raise ProviderFailed(UNVERIFIED, "subject")
    if len(email) > EMAIL_MAX or "@" not in email:
        email, verified = "", False
    return Identity(name, subject, email, verified, username[:64])
