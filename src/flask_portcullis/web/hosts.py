"""The page for a request whose ``Host`` header is foreign or malformed (see ``hosts.py``).

Flask leaves such a request without a URL adapter, so ``url_for`` (and so
every page built on ``base.html``) would fail: this answer is plain, builds
no URL and does not echo the host back.
"""

from __future__ import annotations

from flask import Response, request
from werkzeug.exceptions import SecurityError

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>400 Bad Request</title></head>
<body><h1>Bad Request</h1><p>This site does not answer to that host name.</p></body></html>
"""


def untrusted_host() -> Response | None:
    """Answer 400 before any other hook runs, when the Host header is not trusted."""
    if isinstance(request.routing_exception, SecurityError):
        return Response(PAGE, status=400, mimetype="text/html")
    return None
