"""Safe ``next`` targets: only same-site relative paths (OWASP ASVS 5.1.5)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for

from ..state import get_state


def safe_next(target: str | None) -> str | None:
    """Return ``target`` when it is a same-site path like ``/account?tab=1``, else None.

    Refuses absolute URLs, scheme-relative ``//host``, backslash tricks that
    browsers read as ``//`` and anything with control characters or spaces.
    """
    if not target or len(target) > 2048:
        return None
    if any(ord(ch) < 0x21 or ch == "\x7f" for ch in target) or "\\" in target:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def after_login_url() -> str:
    """Where a completed sign-in goes: a safe ``next``, else PORTCULLIS_POST_LOGIN_VIEW."""
    return safe_next(request.args.get("next")) or url_for(get_state().settings.post_login_view)
