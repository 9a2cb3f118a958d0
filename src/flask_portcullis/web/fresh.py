"""``fresh_login_required``: sensitive pages want a recent password (OWASP ASVS 3.7.1)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from ..decorators import login_required
from .login_bridge import is_fresh

F = TypeVar("F", bound=Callable[..., Any])


def ask_for_password() -> Response:
    """Send the user to /reauthenticate, to come back to this page after."""
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("portcullis.reauthenticate", next=target))


def fresh_login_required(view: F) -> F:
    """Like login_required, and the password was given within the freshness window;
    otherwise ask for it at /reauthenticate and come back here."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_fresh():
            return ask_for_password()
        return view(*args, **kwargs)

    return cast(F, login_required(wrapped))
