"""Optional Flask-Principal bridge (``PORTCULLIS_PRINCIPAL = True``).

Code written from the Flask-Principal docs keeps working unchanged::

    admin_permission = Permission(RoleNeed("admin"))

    @app.route("/reports")
    @admin_permission.require(http_exception=403)
    def reports(): ...

The identity is derived from the signed-in user on every request (no
identity in the cookie), so it can never outlive a server-side session.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_login import current_user

try:
    from flask_principal import (
        AnonymousIdentity,
        Identity,
        Need,
        Principal,
        RoleNeed,
        UserNeed,
        identity_loaded,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "PORTCULLIS_PRINCIPAL needs Flask-Principal: pip install 'flask-portcullis[principal]'"
    ) from exc


def PermissionNeed(name: str) -> Any:
    """A Need for a Portcullis permission string, e.g. ``PermissionNeed("reports.read")``."""
    return Need("permission", name)


def _load_identity() -> Identity:
    if current_user.is_authenticated:
        return Identity(current_user.id, auth_type="portcullis")
    return AnonymousIdentity()


def _add_needs(sender: Any, identity: Identity) -> None:
    if not current_user.is_authenticated or identity.id != current_user.id:
        return
    identity.provides.add(UserNeed(current_user.id))
    for role in current_user.roles:
        identity.provides.add(RoleNeed(role.name))
    for name in current_user.permission_names:
        identity.provides.add(PermissionNeed(name))


def init_app(app: Flask) -> None:
    principal = Principal(app, use_sessions=False, skip_static=True)
    principal.identity_loader(_load_identity)
    identity_loaded.connect_via(app)(_add_needs)
