"""Read every ``PORTCULLIS_*`` key once, validate it, and freeze it.

Views and services get a :class:`Settings`; nothing reads ``app.config`` at
request time. A bad value fails at start-up with one message naming the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

from .csp import Directives, directive_problems
from .exceptions import ConfigurationError
from .providers import Provider, parse_providers

PREFIX = "PORTCULLIS_"

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
OWASP_ARGON2 = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}


_EXAMPLES: dict[type, str] = {
    bool: "true",
    int: "3600",
    str: '"text"',
    tuple: "'[\"https://app.example.com\"]'",
}
# Keys that keep their ecosystem name instead of PORTCULLIS_* (Flask-Limiter's off switch).
_KEYS = {"rate_limits": "RATELIMIT_ENABLED"}
VERIFICATION_MODES = ("required", "optional", "off")
# Where the security headers go: every response, only Portcullis's own pages, or none.
HEADER_SCOPES = ("all", "portcullis", "off")
JWT_ALGORITHMS = ("EdDSA", "ES256", "HS256")


def store_url_ok(url: str) -> bool:
    """Whether ``url`` names a session store: ``sql``, Redis, or one Memcached server."""
    if url == "sql" or url.startswith(("redis://", "rediss://", "unix://")):
        return True
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "memcached"
        and bool(parts.hostname)
        and port is not None
        and (parts.path in ("", "/") and not parts.query)
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Every extension setting with its safe default (documented in docs/configuration.md)."""

    # NIST SP 800-63B 5.1.1.2: at least 8, accept at least 64, no composition rules.
    password_min_length: int = 8
    password_max_length: int = 256
    argon2_time_cost: int = OWASP_ARGON2["time_cost"]
    argon2_memory_cost: int = OWASP_ARGON2["memory_cost"]
    argon2_parallelism: int = OWASP_ARGON2["parallelism"]
    # OWASP ASVS 3.3.1/3.3.2: idle and absolute limits, in seconds.
    session_idle_timeout: int = 30 * 60
    session_lifetime: int = 12 * 60 * 60
    remember_lifetime: int = 30 * 24 * 60 * 60
    site_name: str = "Portcullis"
    secure_cookies: bool = True
    # One of HEADER_SCOPES; the config key also takes false ("off") and true ("all").
    security_headers: str = dataclasses.field(default="all", metadata={"flag": ("off", "all")})
    # Sources added to the strict CSP, per directive (see csp.py): a mapping in the config,
    # kept as (directive, sources) pairs so the frozen settings stay hashable.
    csp: Directives = dataclasses.field(
        default=(),
        metadata={"mapping": True, "example": '\'{"img-src": ["https://images.example.com"]}\''},
    )
    registration: bool = True
    principal: bool = False
    post_login_view: str = "portcullis.account"
    post_logout_view: str = "portcullis.login"
    # Email: "required" refuses sign-in until verified, "optional" only shows it, "off" skips it.
    email_verification: str = "optional"
    verify_email_lifetime: int = 24 * 60 * 60
    reset_password_lifetime: int = 60 * 60
    invitation_lifetime: int = 7 * 24 * 60 * 60
    # Mail throttles, in the notation of the ``limits`` package ("3/hour", "10 per day").
    mail_limit_per_address: str = "3/hour"
    mail_limit_per_client: str = "10/hour"
    # Sign-in and sign-up limits (OWASP ASVS 2.2.1, NIST SP 800-63B 5.2.2).
    login_limit_per_client: str = "30/minute;300/hour"
    login_limit_per_account_client: str = "10 per 15 minutes"
    # A trusted device's own budget, instead of the account's shared counter (OWASP device
    # cookies): others' failures neither delay nor lock a browser that signed in before.
    login_limit_per_device: str = "10 per 15 minutes"
    login_free_failures: int = 5
    login_max_delay: int = 15 * 60
    register_limit_per_client: str = "10/hour"
    rate_limit_fail_closed: bool = True
    new_device_notice: bool = True
    # ASVS 3.7.1: sensitive pages want a sign-in (or password) this recent, in seconds.
    fresh_login_window: int = 10 * 60
    # Users holding any of these roles must set up a second factor before anything else.
    require_2fa_for_roles: tuple[str, ...] = ()
    # WebAuthn relying party: empty means this request's host name and origin (fine for
    # localhost; set both in production so a proxy's Host header cannot choose them).
    webauthn_rp_id: str = ""
    webauthn_origins: tuple[str, ...] = ()
    audit_retention_days: int = 365
    trusted_proxies: int = 0
    # The JSON API: JWT access tokens (RFC 7519) and CORS.
    jwt_algorithm: str = "EdDSA"
    jwt_issuer: str = "portcullis"
    jwt_audience: str = "portcullis-api"
    access_token_lifetime: int = 15 * 60
    cors_origins: tuple[str, ...] = ()
    # The JSON API at /api/v1 (its routes, hooks and OpenAPI document), or none of it.
    api: bool = True
    # Sign-in providers (see providers.py): any OpenID Connect provider, or a preset.
    oauth_providers: tuple[Provider, ...] = dataclasses.field(
        default=(), metadata={"providers": True}
    )
    # Where providers send the browser back (+ /login/oauth/<name>/callback). Empty: from
    # SERVER_NAME and PREFERRED_URL_SCHEME; with neither, only on the local default hosts.
    oauth_redirect_base: str = ""
    # An account with a second factor is asked for it after a provider too.
    oauth_second_factor: bool = True
    redis_url: str = ""
    redis_prefix: str = "portcullis"
    # Where server-side sessions live (see session_stores.py): "sql", a redis:// URL or
    # memcached://host:port.
    session_store: str = "sql"
    rate_limits: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Build settings from a Flask config, raising ConfigurationError on bad values."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = _KEYS.get(field.name, PREFIX + field.name.upper())
            if key not in config:
                continue
            value = config[key]
            if "flag" in field.metadata:  # false, true or a named value; validate() checks it
                values[field.name] = field.metadata["flag"][value] if type(value) is bool else value
                continue
            if "providers" in field.metadata:
                values[field.name] = parse_providers(value)
                continue
            if "mapping" in field.metadata:
                value = _pairs(key, value, field.metadata["example"])
            expected = type(field.default)
            if expected is tuple and isinstance(value, list | tuple):
                value = tuple(value)
            # bool is an int subclass: refuse True for a number and 1 for a flag.
            if type(value) is not expected:
                example = field.metadata.get("example") or _EXAMPLES[expected]
                raise ConfigurationError(
                    f"{key} must be {expected.__name__}, got {value!r}. "
                    f"As an environment variable use JSON, e.g. FLASK_{key}={example}."
                )
            values[field.name] = value
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations that would make the extension unsafe or unusable."""
        problems: list[str] = []
        if self.password_min_length < 8:
            problems.append("PORTCULLIS_PASSWORD_MIN_LENGTH must be at least 8 (NIST SP 800-63B).")
        if self.password_max_length < max(64, self.password_min_length):
            problems.append(
                "PORTCULLIS_PASSWORD_MAX_LENGTH must be at least 64 and at least the minimum."
            )
        if self.password_max_length > 4096:
            problems.append("PORTCULLIS_PASSWORD_MAX_LENGTH above 4096 invites hashing DoS.")
        if self.argon2_time_cost < 1 or self.argon2_parallelism < 1:
            problems.append("PORTCULLIS_ARGON2_TIME_COST and _PARALLELISM must be at least 1.")
        if self.argon2_memory_cost < 8 * self.argon2_parallelism:
            problems.append("PORTCULLIS_ARGON2_MEMORY_COST must be at least 8 x parallelism KiB.")
        if self.jwt_algorithm not in JWT_ALGORITHMS:
            problems.append(
                "PORTCULLIS_JWT_ALGORITHM must be one of " + ", ".join(JWT_ALGORITHMS) + "."
            )
        if not all(
            isinstance(o, str) and o.startswith(("https://", "http://")) for o in self.cors_origins
        ):
            problems.append(
                'PORTCULLIS_CORS_ORIGINS must list origins like "https://app.example.com".'
            )
        if not all(
            isinstance(o, str) and o.startswith(("https://", "http://")) and o.count("/") == 2
            for o in self.webauthn_origins
        ):
            problems.append(
                'PORTCULLIS_WEBAUTHN_ORIGINS must list origins like "https://example.com".'
            )
        if any(ch in self.webauthn_rp_id for ch in ":/ "):
            problems.append("PORTCULLIS_WEBAUTHN_RP_ID is a host name, without scheme or port.")
        elif bool(self.webauthn_rp_id) != bool(self.webauthn_origins):
            problems.append(
                "Set PORTCULLIS_WEBAUTHN_RP_ID and PORTCULLIS_WEBAUTHN_ORIGINS together "
                "(neither: both come from each request)."
            )
        else:
            rp_id = self.webauthn_rp_id
            for origin in self.webauthn_origins:
                host = urlsplit(origin).hostname if isinstance(origin, str) else None
                if host and host != rp_id and not host.endswith("." + rp_id):
                    problems.append(
                        f"PORTCULLIS_WEBAUTHN_ORIGINS: {origin} is not on {rp_id} or below "
                        "it; browsers refuse such passkeys."
                    )
        if not all(isinstance(role, str) and role for role in self.require_2fa_for_roles):
            problems.append('PORTCULLIS_REQUIRE_2FA_FOR_ROLES lists role names, e.g. ["admin"].')
        if self.security_headers not in HEADER_SCOPES:
            problems.append(
                'PORTCULLIS_SECURITY_HEADERS must be true, "portcullis" or false, '
                f"got {self.security_headers!r}."
            )
        problems.extend(directive_problems("PORTCULLIS_CSP", self.csp))
        if self.email_verification not in VERIFICATION_MODES:
            problems.append(
                "PORTCULLIS_EMAIL_VERIFICATION must be one of "
                + ", ".join(VERIFICATION_MODES)
                + "."
            )
        if not 1 <= self.login_free_failures < 100:
            problems.append("PORTCULLIS_LOGIN_FREE_FAILURES must be between 1 and 99.")
        if self.login_max_delay <= 0:
            problems.append("PORTCULLIS_LOGIN_MAX_DELAY must be a positive number of seconds.")
        if not 0 <= self.trusted_proxies <= 10:
            problems.append("PORTCULLIS_TRUSTED_PROXIES must be between 0 and 10.")
        for name in (
            "mail_limit_per_address",
            "mail_limit_per_client",
            "login_limit_per_client",
            "login_limit_per_account_client",
            "login_limit_per_device",
            "register_limit_per_client",
        ):
            try:
                parse_many(getattr(self, name))
            except ValueError:
                problems.append(f"{PREFIX}{name.upper()} must read like '3/hour' or '10 per day'.")
        base = urlsplit(self.oauth_redirect_base)
        if self.oauth_redirect_base and (
            base.scheme not in ("https", "http") or not base.netloc or base.query or base.fragment
        ):
            problems.append(
                'PORTCULLIS_OAUTH_REDIRECT_BASE is the site\'s address, e.g. "https://example.com".'
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("PORTCULLIS_REDIS_URL must be a redis://, rediss:// or unix:// URL.")
        if not store_url_ok(self.session_store):
            problems.append(
                'PORTCULLIS_SESSION_STORE must be "sql", a redis://, rediss:// or unix:// URL, '
                'or "memcached://host:port".'
            )
        for name in (
            "session_idle_timeout",
            "session_lifetime",
            "remember_lifetime",
            "verify_email_lifetime",
            "reset_password_lifetime",
            "invitation_lifetime",
            "audit_retention_days",
            "access_token_lifetime",
            "fresh_login_window",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{PREFIX}{name.upper()} must be a positive number of seconds.")
        if self.session_idle_timeout > self.session_lifetime:
            problems.append(
                "PORTCULLIS_SESSION_IDLE_TIMEOUT cannot exceed PORTCULLIS_SESSION_LIFETIME."
            )
        if self.remember_lifetime < self.session_lifetime:
            problems.append(
                "PORTCULLIS_REMEMBER_LIFETIME cannot be shorter than PORTCULLIS_SESSION_LIFETIME."
            )
        if problems:
            raise ConfigurationError(" ".join(problems))

    @property
    def argon2_is_owasp_strength(self) -> bool:
        """Tell whether the hash parameters meet the OWASP minimum (a start-up warning if not)."""
        return (
            self.argon2_memory_cost >= OWASP_ARGON2["memory_cost"]
            and self.argon2_time_cost >= OWASP_ARGON2["time_cost"]
        )


def _pairs(key: str, value: Any, example: str) -> Any:
    """Turn a mapping of name -> list into (name, tuple) pairs; ``validate`` checks the rest."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{key} must be a mapping, got {value!r}. "
            f"As an environment variable use a JSON object, e.g. FLASK_{key}={example}."
        )
    return tuple(
        (name, tuple(items) if isinstance(items, list | tuple) else items)
        for name, items in value.items()
    )
