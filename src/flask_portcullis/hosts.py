"""Which ``Host`` headers the app answers, so that links in mails never point elsewhere.

Reset and verification links are absolute: built from ``SERVER_NAME`` when
it is set, else from the request's host. An attacker who sends ``Host:
attacker.example`` with someone else's address would otherwise have that
person mailed a reset link to the attacker's site (OWASP WSTG-INPV-17). So
every request's host is checked against a list (Flask's ``TRUSTED_HOSTS``,
enforced by Werkzeug with a 400 before any view runs, malformed hosts
included), and that list is never empty: with neither ``TRUSTED_HOSTS`` nor
``SERVER_NAME`` set, only this machine's own names are trusted, as Django
does with ``ALLOWED_HOSTS`` when it is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .exceptions import ConfigurationError

# Any port: `make run`, `flask run` and a local gunicorn all work with no settings.
LOCAL_HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class TrustedHosts:
    """The host names to trust, and where the list came from."""

    names: tuple[str, ...]
    source: str  # "TRUSTED_HOSTS", "SERVER_NAME" or "default"


def trusted_hosts(config: Mapping[str, Any]) -> TrustedHosts:
    """Decide the trusted hosts from a Flask config, or raise ConfigurationError.

    ``TRUSTED_HOSTS`` wins; else the host of ``SERVER_NAME``; else :data:`LOCAL_HOSTS`.
    An empty ``TRUSTED_HOSTS`` would trust every host, so it is refused.
    """
    configured = config.get("TRUSTED_HOSTS")
    if configured is not None:
        if isinstance(configured, str) or not all(
            isinstance(name, str) and name for name in configured
        ):
            raise ConfigurationError(
                'TRUSTED_HOSTS must be a list of host names, e.g. ["accounts.example.com"] '
                '(a leading dot trusts every subdomain: [".example.com"]).'
            )
        if not configured:
            raise ConfigurationError(
                "TRUSTED_HOSTS is empty, which trusts every Host header and lets anyone "
                "have reset links mailed for your users point to their site. List your "
                'host names, e.g. ["accounts.example.com"].'
            )
        return TrustedHosts(tuple(configured), "TRUSTED_HOSTS")
    server_name = config.get("SERVER_NAME")
    if server_name:
        host = urlsplit(f"//{server_name}").hostname
        if not host:
            raise ConfigurationError(
                f"SERVER_NAME {server_name!r} is not a host name (with an optional port)."
            )
        return TrustedHosts((host,), "SERVER_NAME")
    return TrustedHosts(LOCAL_HOSTS, "default")
