"""Portcullis: a complete, secure user-account system for Flask."""

from __future__ import annotations

from importlib.resources import files

from .decorators import (
    access_required,
    login_required,
    permission_required,
    roles_accepted,
    roles_required,
)
from .exceptions import (
    AccountInactive,
    ConfigurationError,
    InvalidCredentials,
    PasswordRejected,
    PortcullisError,
)
from .extension import Portcullis
from .forms import RegisterForm
from .models import NAMING_CONVENTION, PermissionMixin, RoleMixin, SessionMixin, UserMixin
from .settings import Settings
from .state import State, get_state

#: The shipped Alembic migrations: ``Migrate(app, db, directory=flask_portcullis.MIGRATIONS)``.
MIGRATIONS = str(files(__name__) / "migrations")

__all__ = [
    "MIGRATIONS",
    "NAMING_CONVENTION",
    "AccountInactive",
    "ConfigurationError",
    "InvalidCredentials",
    "PasswordRejected",
    "PermissionMixin",
    "Portcullis",
    "PortcullisError",
    "RegisterForm",
    "RoleMixin",
    "SessionMixin",
    "Settings",
    "State",
    "UserMixin",
    "access_required",
    "get_state",
    "login_required",
    "permission_required",
    "roles_accepted",
    "roles_required",
]
