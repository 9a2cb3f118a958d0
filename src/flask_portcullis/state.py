"""What one app's Portcullis holds, and how any module finds it.

Kept apart from ``extension`` (which wires the adapters) so that the
adapters and the use cases can reach the services without importing the
module that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from .access_tokens import AccessTokens
from .accounts import AccountService
from .audit import AuditLog
from .authentication import Authenticator
from .clock import Clock
from .devices import DeviceService
from .email_links import EmailLinks
from .export import AccountExport
from .federation import Federation
from .hosts import TrustedHosts
from .identities import Identities
from .invitations import Invitations
from .models import Models
from .notify import Notifier
from .passkeys import PasskeyService
from .rbac import RoleService
from .refresh_tokens import RefreshTokens
from .sessions import SessionService
from .settings import Settings
from .signup import SignupFields
from .throttling import Throttle
from .two_factor import TwoFactorService


@dataclass(frozen=True)
class State:
    """What one app's Portcullis holds, kept in ``app.extensions["portcullis"]``."""

    settings: Settings
    models: Models
    db: SQLAlchemy
    accounts: AccountService
    authenticator: Authenticator
    links: EmailLinks  # the links mailed to an address
    sessions: SessionService
    identities: Identities  # signed-in users as plain rows (the per-request check)
    devices: DeviceService
    roles: RoleService
    notifier: Notifier
    throttle: Throttle
    audit: AuditLog
    access_tokens: AccessTokens
    refresh_tokens: RefreshTokens
    two_factor: TwoFactorService
    passkeys: PasskeyService
    federation: Federation  # accounts' links to sign-in providers
    invitations: Invitations  # addresses an administrator invited
    export: AccountExport  # a user's own data, for /account/export
    debug: bool  # as configured when the app was set up (the CLI resets app.debug later)
    clock: Clock
    hosts: TrustedHosts
    signup: SignupFields  # the register form and its host-added fields


def get_state(app: Flask | None = None) -> State:
    """Return the Portcullis state of ``app`` (default: the current app)."""
    app = app or current_app
    try:
        return cast(State, app.extensions["portcullis"])
    except KeyError:
        raise RuntimeError(
            "Portcullis is not set up on this app: "
            "call Portcullis(app) or portcullis.init_app(app) first."
        ) from None
