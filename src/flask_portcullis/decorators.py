"""Access decorators, all derived from one primitive (OWASP ASVS 4.1.3, 4.2)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app
from flask_login import current_user

from .models import UserMixin

F = TypeVar("F", bound=Callable[..., Any])


def access_required(check: Callable[[UserMixin], bool]) -> Callable[[F], F]:
    """Let a view run only for a signed-in user for whom ``check(user)`` holds.

    Anonymous visitors go to the login view with ``next`` set (Flask-Login's
    ``unauthorized``); signed-in users who fail the check get 403.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not check(current_user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def login_required(view: F) -> F:
    """Require a signed-in user (like Flask-Login's, but from the same primitive as the rest)."""
    return access_required(lambda user: True)(view)


def _names(names: tuple[str, ...]) -> tuple[str, ...]:
    # all(()) is True: an empty list would let everyone in, so refuse it outright.
    if not names:
        raise TypeError("Name at least one role or permission.")
    return names


def roles_required(*names: str) -> Callable[[F], F]:
    """Require every one of the roles ``names``."""
    _names(names)
    return access_required(lambda user: all(user.has_role(name) for name in names))


def roles_accepted(*names: str) -> Callable[[F], F]:
    """Require at least one of the roles ``names``."""
    _names(names)
    return access_required(lambda user: any(user.has_role(name) for name in names))


def permission_required(*names: str) -> Callable[[F], F]:
    """Require every one of the permissions ``names`` (``"resource.action"`` strings)."""
    _names(names)
    return access_required(lambda user: all(user.has_permission(name) for name in names))
