"""Security headers (OWASP ASVS 14.4, 3.4) and the no-store rule for personal pages (8.2.1).

The headers are built once, at start-up, from the settings: each response only
appends what is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, request, session

from .. import csp

HSTS = "max-age=31536000; includeSubDomains"
# Portcullis's own pages, as PORTCULLIS_SECURITY_HEADERS = "portcullis" means them: the
# account pages and their static files, the admin console and the JSON API.
OWN_BLUEPRINTS = frozenset({"portcullis", "portcullis_admin", "portcullis_api"})
CONTENT_SECURITY_POLICY = csp.build()  # the default, without a host's additions


def security_headers(extra: csp.Directives = ()) -> tuple[tuple[str, str], ...]:
    """Return the headers with ``extra`` CSP sources added.

    A host that lets frames in (``frame-ancestors``) gets no ``X-Frame-Options``: it
    cannot list origins, and browsers that know CSP follow ``frame-ancestors`` instead.
    """
    headers = [("Content-Security-Policy", csp.build(extra))]
    if "frame-ancestors" not in dict(extra):
        headers.append(("X-Frame-Options", "DENY"))
    headers += [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    return tuple(headers)


def header_adder(
    headers: tuple[tuple[str, str], ...], only: frozenset[str] | None = None
) -> Callable[[Response], Response]:
    """Make the after-request hook that adds ``headers`` (only to blueprints ``only``, if given)."""
    names = [(name.lower(), name, value) for name, value in headers]

    def add_security_headers(response: Response) -> Response:
        """Set the headers unless the view set its own value.

        One look at the names already set, then appends: ``setdefault`` per header
        scanned the list twice for each (on every response of the app).
        """
        if only is not None and request.blueprint not in only:
            return response
        present = {name.lower() for name in response.headers.keys()}  # noqa: SIM118 (Headers)
        for lower, name, value in names:
            if lower not in present:
                response.headers.add(name, value)
        if request.is_secure and "strict-transport-security" not in present:
            response.headers.add("Strict-Transport-Security", HSTS)
        return response

    return add_security_headers


def no_store_when_personal(response: Response) -> Response:
    """Keep any response that read the session out of caches (OWASP ASVS 8.2.1).

    Such a response may show who is signed in (Flask marks it ``Vary: Cookie``).
    """
    if session.accessed and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, *, scope: str, extra: csp.Directives = ()) -> None:
    """Add no-store everywhere, and the headers in ``scope`` ("all", "portcullis" or "off")."""
    app.after_request(no_store_when_personal)
    if scope != "off":
        only = OWN_BLUEPRINTS if scope == "portcullis" else None
        app.after_request(header_adder(security_headers(extra), only))
