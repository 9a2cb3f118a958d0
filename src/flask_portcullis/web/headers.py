"""Security headers on every response (OWASP ASVS 14.4, 3.4)."""

from __future__ import annotations

from flask import Flask, Response, request, session

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",  # no inline script anywhere (ASVS 14.4.3)
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=31536000; includeSubDomains"
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


def add_security_headers(response: Response) -> Response:
    """Set the headers unless the view set its own value.

    One look at the names already set, then appends: ``setdefault`` per header
    scanned the list twice for each (on every response of the app).
    """
    headers = response.headers
    present = {name.lower() for name in headers.keys()}  # noqa: SIM118 (Headers, not a dict)
    for name, value in SECURITY_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    if request.is_secure and "strict-transport-security" not in present:
        headers.add("Strict-Transport-Security", HSTS)
    return response


def no_store_when_personal(response: Response) -> Response:
    """Keep any response that read the session out of caches (OWASP ASVS 8.2.1).

    Such a response may show who is signed in (Flask marks it ``Vary: Cookie``).
    """
    if session.accessed and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, *, security_headers: bool) -> None:
    app.after_request(no_store_when_personal)
    if security_headers:
        app.after_request(add_security_headers)
