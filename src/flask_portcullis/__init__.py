"""Portcullis: a complete, secure user-account system for Flask."""

from __future__ import annotations

from .decorators import access_required, permission_required, roles_accepted, roles_required
from .exceptions import (
    AccountInactive,
    ConfigurationError,
    InvalidCredentials,
    PasswordRejected,
    PortcullisError,
)
from .extension import Portcullis, State, get_state
from .models import PermissionMixin, RoleMixin, SessionMixin, UserMixin
from .settings import Settings

__all__ = [
    "AccountInactive",
    "ConfigurationError",
    "InvalidCredentials",
    "PasswordRejected",
    "PermissionMixin",
    "Portcullis",
    "PortcullisError",
    "RoleMixin",
    "SessionMixin",
    "Settings",
    "State",
    "UserMixin",
    "access_required",
    "get_state",
    "permission_required",
    "roles_accepted",
    "roles_required",
]
