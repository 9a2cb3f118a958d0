"""Sign-in providers as configured: the presets, and the checks made at start-up.

``PORTCULLIS_OAUTH_PROVIDERS`` maps a short name to a client: any OpenID
Connect provider by its discovery document, or a preset (``github``,
``google``) that needs only the client's id and secret. A mistake names the
key and stops start-up, instead of surfacing as a failed sign-in later.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .exceptions import ConfigurationError

KEY = "PORTCULLIS_OAUTH_PROVIDERS"
EXAMPLE = (
    'FLASK_PORTCULLIS_OAUTH_PROVIDERS=\'{"github": {"client_id": "...", "client_secret": "..."}}\''
)
# A name goes into paths (/login/oauth/<name>) and the links table.
NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
RESERVED = frozenset({"cancel"})  # /login/oauth/cancel is a page of its own
OIDC = "oidc"
OIDC_SCOPE = "openid email profile"
GITHUB = "github"

# What each preset fills in; a provider's own settings override them (GitHub Enterprise
# Server, say, with its own authorize_url, access_token_url and api_base_url).
PRESETS: dict[str, dict[str, str]] = {
    "github": {
        "kind": GITHUB,
        "label": "GitHub",
        "authorize_url": "https://github.com/login/oauth/authorize",
        "access_token_url": "https://github.com/login/oauth/access_token",
        "api_base_url": "https://api.github.com/",
        # The verified addresses come from /user/emails, which needs user:email.
        "scope": "read:user user:email",
    },
    "google": {
        "kind": OIDC,
        "label": "Google",
        "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration",
        "scope": "openid email profile",
    },
}
URL_KEYS = ("server_metadata_url", "authorize_url", "access_token_url", "api_base_url")
KNOWN_KEYS = {"client_id", "client_secret", "label", "scope", *URL_KEYS}


@dataclass(frozen=True)
class Provider:
    """One configured provider: where it lives and who we are to it."""

    name: str
    label: str
    kind: str  # OIDC: ID token checked against the discovery document; GITHUB: its REST API
    client_id: str
    client_secret: str = ""
    scope: str = OIDC_SCOPE
    server_metadata_url: str = ""
    authorize_url: str = ""
    access_token_url: str = ""
    api_base_url: str = ""

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"Provider({self.name!r}, {self.kind}, client_id={self.client_id!r})"

    @property
    def origins(self) -> tuple[str, ...]:
        """The provider's own origins known from configuration (the browser is sent there:
        the sign-in form's CSP must allow them as form-action)."""
        urls = (self.server_metadata_url, self.authorize_url)
        return tuple(dict.fromkeys(origin(url) for url in urls if url))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_providers(value: Any) -> tuple[Provider, ...]:
    """Read the setting's value (a mapping, as JSON in the environment), or raise
    ConfigurationError naming the provider and the key to fix."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{KEY} must be a mapping of provider names to settings, got {value!r}. "
            f"As an environment variable use a JSON object, e.g. {EXAMPLE}."
        )
    return tuple(_provider(str(name), options) for name, options in value.items())


def _provider(name: str, options: Any) -> Provider:
    where = f"{KEY}[{name!r}]"
    if not NAME.fullmatch(name) or name in RESERVED:
        raise ConfigurationError(
            f"{where}: a provider name is 1-32 lower-case letters, digits, - or _, "
            "starting with a letter (it is part of the callback URL), and not "
            + ", ".join(sorted(RESERVED))
            + "."
        )
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{where} must be a mapping, e.g. {EXAMPLE}.")
    unknown = sorted(set(options) - KNOWN_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(KNOWN_KEYS))}."
        )
    if not all(isinstance(v, str) for v in options.values()):
        raise ConfigurationError(f"{where}: every setting is a string.")
    preset = PRESETS.get(name, {})
    if options.get("server_metadata_url"):  # any OpenID provider, whatever its name
        preset = {"label": preset.get("label", name.title())}
    elif not preset:
        raise ConfigurationError(
            f"{where}: {name!r} is not a preset ({', '.join(PRESETS)}); for any OpenID "
            "Connect provider give its server_metadata_url (the "
            "/.well-known/openid-configuration URL)."
        )
    merged = {"kind": OIDC, "label": name.title(), "scope": OIDC_SCOPE, **preset, **options}
    for key in ("client_id", "client_secret"):
        if not merged.get(key, "").strip():
            raise ConfigurationError(
                f"{where}: {key} is missing: copy it from the client you registered "
                "with the provider."
            )
    for key in URL_KEYS:
        url = merged.get(key, "")
        if url and not _safe_url(url):
            raise ConfigurationError(
                f"{where}: {key} must be an https:// URL (http:// only on a loopback host "
                f"such as 127.0.0.1 or localhost, for a local provider), got {url!r}."
            )
    if merged["kind"] == OIDC and "openid" not in merged["scope"].split():
        raise ConfigurationError(f"{where}: scope must include openid for an OpenID provider.")
    return Provider(name=name, **merged)


def _safe_url(url: str) -> bool:
    """https anywhere; http only where nobody else can listen (tests, development)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and _loopback(parts.hostname)


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
