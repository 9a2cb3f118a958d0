"""Check a running configuration against the security checklist (``flask portcullis doctor``).

Each finding names the standard it comes from, so an operator can look it
up; any "fail" makes the command exit non-zero, so it can gate a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from . import health
from .session_stores import RedisStore
from .settings import OWASP_ARGON2
from .state import State

WEAK_KEYS = {"dev", "secret", "changeme", "change-me", "secret-key", "development"}


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    status: Status
    item: str
    message: str
    standard: str


def _check(ok: bool, item: str, good: str, bad: str, standard: str, *, severe: bool) -> Finding:
    status = Status.PASS if ok else Status.FAIL if severe else Status.WARN
    return Finding(status, item, good if ok else bad, standard)


def examine(app: Flask, state: State) -> list[Finding]:
    """Return one finding per checklist item, in a stable order."""
    config, settings = app.config, state.settings
    key = str(config.get("SECRET_KEY") or "")
    weak_key = len(key) < 32 or key.lower() in WEAK_KEYS or len(set(key)) < 8
    redis_ok = state.throttle.healthy() if settings.redis_url else False
    own_pages_only = settings.security_headers == "portcullis"
    return [
        _check(
            not weak_key,
            "secret key",
            "long and random-looking",
            "SECRET_KEY is short or guessable: use 32+ random bytes (secrets.token_hex(32))",
            "OWASP ASVS 6.4.1",
            severe=True,
        ),
        _check(
            not (app.debug or state.debug),
            "debug mode",
            "off",
            "debug mode is on: it shows code and a console to anyone who triggers an error",
            "OWASP ASVS 14.3.2",
            severe=True,
        ),
        _check(
            bool(config.get("SESSION_COOKIE_SECURE")),
            "Secure cookies",
            "session cookie is Secure",
            "session cookie is not Secure: serve over HTTPS and keep PORTCULLIS_SECURE_COOKIES on",
            "OWASP ASVS 3.4.1",
            severe=True,
        ),
        _check(
            bool(config.get("SESSION_COOKIE_HTTPONLY")),
            "HttpOnly cookies",
            "session cookie is HttpOnly",
            "session cookie is readable by scripts",
            "OWASP ASVS 3.4.2",
            severe=True,
        ),
        _check(
            str(config.get("SESSION_COOKIE_SAMESITE")) in ("Lax", "Strict"),
            "SameSite cookies",
            f"SameSite={config.get('SESSION_COOKIE_SAMESITE')}",
            "SESSION_COOKIE_SAMESITE should be Lax or Strict",
            "OWASP ASVS 3.4.3",
            severe=False,
        ),
        _check(
            settings.argon2_is_owasp_strength,
            "password hashing",
            f"argon2id m={settings.argon2_memory_cost} t={settings.argon2_time_cost}",
            f"argon2id below m={OWASP_ARGON2['memory_cost']}, t={OWASP_ARGON2['time_cost']}",
            "OWASP ASVS 2.4.1 / Password Storage Cheat Sheet",
            severe=True,
        ),
        _check(
            settings.rate_limits,
            "rate limits",
            "on",
            "RATELIMIT_ENABLED is false: sign-in can be guessed at full speed",
            "OWASP ASVS 2.2.1 / NIST SP 800-63B 5.2.2",
            severe=True,
        ),
        _check(
            redis_ok,
            "shared limits",
            "rate limits kept in Redis",
            "unreachable Redis at PORTCULLIS_REDIS_URL"
            if settings.redis_url
            else "no PORTCULLIS_REDIS_URL: each worker counts attempts alone",
            "OWASP ASVS 2.2.1",
            severe=bool(settings.redis_url),
        ),
        _check(
            settings.session_idle_timeout <= 30 * 60 and settings.session_lifetime <= 12 * 3600,
            "session timeouts",
            f"idle {settings.session_idle_timeout}s, absolute {settings.session_lifetime}s",
            "idle timeout above 30 minutes or lifetime above 12 hours",
            "OWASP ASVS 3.3.2",
            severe=False,
        ),
        _check(
            settings.email_verification != "off",
            "email verification",
            settings.email_verification,
            "off: addresses are never proven, so recovery may mail a stranger",
            "NIST SP 800-63B 6.1.2.3",
            severe=False,
        ),
        _check(
            bool(config.get("MAIL_SERVER")),
            "mail delivery",
            f"SMTP via {config.get('MAIL_SERVER')}",
            "no MAIL_SERVER: mail is printed to the console, users get none",
            "OWASP ASVS 2.5.1",
            severe=False,
        ),
        _check(
            settings.security_headers != "off",
            "security headers",
            "CSP, frame and content-type headers on"
            + (" Portcullis's pages (yours need their own)" if own_pages_only else ""),
            "PORTCULLIS_SECURITY_HEADERS is off: make sure another layer sets them",
            "OWASP ASVS 14.4",
            severe=False,
        ),
        _check(
            state.hosts.source != "default",
            "host of links",
            f"requests and links only for {', '.join(state.hosts.names)} ({state.hosts.source})",
            "neither TRUSTED_HOSTS nor SERVER_NAME names your site: only "
            f"{' and '.join(state.hosts.names)} are answered, other hosts get 400; "
            "set TRUSTED_HOSTS or SERVER_NAME to the site's name",
            "OWASP WSTG-INPV-17",
            severe=not (app.debug or state.debug),
        ),
        _check(
            config.get("PREFERRED_URL_SCHEME") == "https",
            "links in mail",
            "https links",
            "PREFERRED_URL_SCHEME is not https: set it (and SERVER_NAME) for links in mail",
            "OWASP ASVS 9.1.1",
            severe=False,
        ),
        _check(
            bool(settings.webauthn_rp_id),
            "passkey site",
            f"relying party {settings.webauthn_rp_id}",
            "no PORTCULLIS_WEBAUTHN_RP_ID/_ORIGINS: passkeys take the site from each request's "
            "Host header; set them, as passkeys stay bound to the first one",
            "WebAuthn Level 3, 5.1.3",
            severe=False,
        ),
        _check(
            health.database_ok(state.db.engine, state.models.User),
            "database",
            "reachable, schema present",
            "unreachable or not migrated: run flask db upgrade",
            "operations",
            severe=True,
        ),
        _session_store(state),
        _look_alikes(state),
        _adopted_duplicates(state),
    ]


def _session_store(state: State) -> Finding:
    """Reachable, and for Redis an eviction policy that can never drop a user's set of
    sessions (then "sign out everywhere" would miss some: session_stores.RedisStore)."""
    store = state.sessions.store
    item, standard = "session store", "operations"
    if not health.store_ok(store):
        bad = f"{store.kind} at PORTCULLIS_SESSION_STORE does not answer: nobody can sign in"
        return _check(False, item, "", bad, standard, severe=True)
    policy = store.eviction_policy() if isinstance(store, RedisStore) else None
    if policy is not None and policy.startswith("allkeys"):
        bad = (
            f"Redis evicts any key (maxmemory-policy {policy}): it could drop a user's set of "
            "sessions and 'sign out everywhere' would miss some; use noeviction or volatile-lru"
        )
        return _check(False, item, "", bad, standard, severe=True)
    good = f"{store.kind}, reachable" + (f", maxmemory-policy {policy}" if policy else "")
    return _check(True, item, good, "", standard, severe=True)


LOOK_ALIKES_SHOWN = 10


def _listing(lines: list[str]) -> str:
    """The first LOOK_ALIKES_SHOWN lines joined, and how many more there are."""
    more = len(lines) - LOOK_ALIKES_SHOWN
    return "; ".join(lines[:LOOK_ALIKES_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def _not_checked(state: State, item: str, standard: str) -> Finding:
    state.db.session.rollback()
    return _check(
        False, item, "", "not checked: database unreachable or not migrated", standard, severe=False
    )


def _look_alikes(state: State) -> Finding:
    """Accounts kept by migration 0007 whose names look like an older account's (UTS #39)."""
    try:
        pairs = state.accounts.look_alikes()
    except SQLAlchemyError:
        return _not_checked(state, "look-alike usernames", "Unicode UTS #39")
    shown = _listing(
        [
            f"{later.username!r} (id {later.id}) looks like "
            + (f"{earlier.username!r} (id {earlier.id})" if earlier else "a deleted account")
            for later, earlier in pairs
        ]
    )
    return _check(
        not pairs,
        "look-alike usernames",
        "no two usernames look alike",
        f"{len(pairs)} account(s) named like an older one (kept from before sign-up refused "
        f"them; rename or remove): " + shown,
        "Unicode UTS #39",
        severe=False,
    )


def _adopted_duplicates(state: State) -> Finding:
    """Adopted accounts that share a name or address, but for case, with an older one."""
    try:
        users = state.accounts.adopted_duplicates()
    except SQLAlchemyError:
        return _not_checked(state, "adopted duplicates", "RFC 8265 / docs/adopting.md")
    shown = _listing([f"{user.username!r} <{user.email}> (id {user.id})" for user in users])
    return _check(
        not users,
        "adopted duplicates",
        "no two accounts share a name or address",
        f"{len(users)} adopted account(s) share a username or email, but for case, with an "
        "older account; each signs in only by its other identity until you rename it or "
        "merge the two: " + shown,
        "RFC 8265 / docs/adopting.md",
        severe=False,
    )
