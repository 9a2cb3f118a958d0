"""The CSRF token of the sign-out button on every signed-in page, signed once a minute per
browser instead of on every page.

Flask-WTF signs a fresh token (an HMAC over the session's CSRF secret and the
time) for each request that renders a form. The sign-out button is on every
page, so that was most pages' only signature. A token stays valid for
``WTF_CSRF_TIME_LIMIT`` from when it was signed, so handing a browser the one
signed for it up to ``REUSE_SECONDS`` ago (a tenth of a shorter limit) only
moves its expiry that much earlier; Flask-WTF checks it exactly as before.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from flask import current_app, g, session
from flask_wtf.csrf import generate_csrf

REUSE_SECONDS = 60
KEPT = 1024  # browsers whose token a process keeps (least recently used go first)

_signed: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()  # per process
_lock = threading.Lock()  # threaded servers share it


def csrf_token() -> str:
    """This browser's CSRF token for a form (Flask-WTF's, reused for up to a minute)."""
    config = current_app.config
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if field in g:  # already signed or reused for this request
        return str(g.get(field))
    signing_key = str(config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key)
    limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)
    reuse = REUSE_SECONDS if limit is None else min(REUSE_SECONDS, limit / 10)
    now = time.monotonic()
    secret = session.get(field)  # the browser's own random value (none yet: a new browser)
    key = (signing_key, secret if isinstance(secret, str) else "")
    with _lock:
        kept = _signed.get(key)
        if kept is not None and now - kept[1] < reuse:
            _signed.move_to_end(key)
            setattr(g, field, kept[0])  # where Flask-WTF keeps it: the page's forms use it too
            return kept[0]
    token = str(generate_csrf())
    secret = session.get(field)
    if isinstance(secret, str):
        with _lock:
            _signed[(signing_key, secret)] = (token, now)
            while len(_signed) > KEPT:
                _signed.popitem(last=False)
    return token
