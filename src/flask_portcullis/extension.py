"""The ``Portcullis`` extension object: wires services, Flask-Login, views and CLI into an app."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, current_app, has_app_context
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from werkzeug.middleware.proxy_fix import ProxyFix

from .access_tokens import AccessTokens
from .accounts import AccountService
from .audit import AuditLog
from .authentication import Authenticator
from .caches import UserCache, changed_users, committed, mark_stale, rolled_back
from .clock import Clock, utcnow
from .devices import DeviceService
from .email_links import EmailLinks
from .exceptions import ConfigurationError
from .export import AccountExport
from .federation import Federation
from .hosts import TrustedHosts, trusted_hosts
from .identities import Identities
from .invitations import Invitations
from .mail import MailSender, sender_from_config
from .migrating import enforce_sqlite_foreign_keys
from .models import UserMixin, build_models
from .notify import Notifier
from .passkeys import PasskeyService
from .password_policy import PasswordPolicy, PasswordValidator
from .passwords import Hasher, PasswordHashing
from .rbac import RoleService
from .refresh_tokens import RefreshTokens
from .session_stores import open_store
from .sessions import SessionService
from .settings import Settings
from .signup import require_signup_fields
from .state import State
from .throttling import LoginGuard, Throttle
from .tokens import TokenService
from .two_factor import TwoFactorService

if TYPE_CHECKING:
    from .forms import RegisterForm

logger = logging.getLogger("flask_portcullis")


class Portcullis:
    """User accounts for a Flask app.

    ``Portcullis(app)`` or ``Portcullis()`` then ``init_app(app)``. Pass your
    own Flask-SQLAlchemy ``db`` (and optionally a ``user_model`` built on
    :class:`~flask_portcullis.models.UserMixin`) to keep the tables in your
    app's metadata; without one, Portcullis makes and initialises its own.
    ``hashers`` replaces the hasher chain (first one hashes); ``validators``
    replaces the password rules; ``mail_sender`` replaces SMTP/console delivery
    (anything with ``send(message)``); ``clock`` is the time source (for tests).
    ``register_form`` is a subclass of :class:`~flask_portcullis.RegisterForm` whose
    added fields sign-up stores in the user columns of the same names.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        user_model: type[UserMixin] | None = None,
        hashers: Sequence[Hasher] | None = None,
        validators: Sequence[PasswordValidator] | None = None,
        mail_sender: MailSender | None = None,
        clock: Clock = utcnow,
        register_form: type[RegisterForm] | None = None,
    ) -> None:
        self.signup = require_signup_fields(register_form, user_model)  # before mapping
        self._owns_db = db is None
        self.db = db if db is not None else SQLAlchemy()
        # Models are mapped once per extension object, like any Flask-SQLAlchemy model.
        self.models = build_models(self.db, user_model)
        self._hashers = hashers
        self._validators = validators
        self._mail_sender = mail_sender
        self.clock = clock
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, clock: Clock | None = None) -> None:
        """Read settings, build the services and register views, CLI and hooks on ``app``.

        ``clock`` overrides the extension's time source for this app only (tests).
        """
        from . import api, cli, migrating, web

        clock = clock or self.clock
        settings = Settings.from_config(app.config)
        if self._owns_db:
            self.db.init_app(app)
        elif "sqlalchemy" not in app.extensions:
            raise RuntimeError("Call db.init_app(app) before portcullis.init_app(app).")
        with app.app_context():
            for engine in self.db.engines.values():
                enforce_sqlite_foreign_keys(engine)
        if not settings.argon2_is_owasp_strength and not app.testing:
            logger.warning("argon2 parameters are below the OWASP minimum (m=19456, t=2).")
        hashing = (
            PasswordHashing(self._hashers)
            if self._hashers
            else PasswordHashing.from_settings(settings)
        )
        policy = (
            PasswordPolicy(self._validators)
            if self._validators
            else PasswordPolicy.from_settings(settings)
        )
        if not app.config.get("SECRET_KEY"):
            raise ConfigurationError("Set SECRET_KEY before portcullis.init_app(app).")
        hosts = trusted_hosts(app.config)
        if (
            settings.oauth_providers
            and not settings.oauth_redirect_base
            and not app.config.get("SERVER_NAME")
            and hosts.source != "default"
        ):
            raise ConfigurationError(
                "PORTCULLIS_OAUTH_PROVIDERS needs the site's address for the redirect URI "
                "registered with each provider: set PORTCULLIS_OAUTH_REDIRECT_BASE (e.g. "
                '"https://accounts.example.com") or SERVER_NAME. It is never taken from '
                "a request's Host header."
            )
        # Flask's rotation convention: old keys still verify, the current one signs.
        keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or []), app.config["SECRET_KEY"]]
        tokens = TokenService(keys, clock)
        throttle = Throttle(
            settings.redis_url or "memory://",
            enabled=settings.rate_limits,
            prefix=settings.redis_prefix,
        )
        session = self.db.session
        identities = Identities(session, self.models)
        store = open_store(settings, session, self.models, identities)
        sessions = SessionService(session, self.models, store, settings, clock)
        if store.users is not None:
            watch_user_changes()
        guard = LoginGuard(
            throttle,
            per_client=settings.login_limit_per_client,
            per_account_client=settings.login_limit_per_account_client,
            registrations_per_client=settings.register_limit_per_client,
            free_failures=settings.login_free_failures,
            max_delay=settings.login_max_delay,
            per_device=settings.login_limit_per_device,
            fail_closed=settings.rate_limit_fail_closed,
        )
        devices = DeviceService(session, self.models, keys, clock)
        accounts = AccountService(
            session, self.models, hashing, policy, sessions, devices, guard, settings, clock
        )
        two_factor = TwoFactorService(session, self.models, keys, settings.site_name, clock)
        audit = AuditLog(session, self.models, clock, sender=app)
        passkeys = PasskeyService(session, self.models, two_factor, clock)
        federation = Federation(session, self.models, clock)
        roles = RoleService(session, self.models)
        invitations = Invitations(
            session, self.models, accounts, roles, settings.invitation_lifetime, clock
        )
        state = State(
            settings=settings,
            models=self.models,
            db=self.db,
            accounts=accounts,
            authenticator=Authenticator(
                session, accounts, hashing, devices, tokens, guard, settings, clock
            ),
            links=EmailLinks(session, self.models, tokens, settings, clock, accounts.get),
            sessions=sessions,
            identities=identities,
            devices=devices,
            roles=roles,
            notifier=Notifier(
                self._mail_sender or sender_from_config(app.config), throttle, settings
            ),
            throttle=throttle,
            audit=audit,
            access_tokens=AccessTokens(
                keys,
                algorithm=settings.jwt_algorithm,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                lifetime=settings.access_token_lifetime,
                clock=clock,
            ),
            refresh_tokens=RefreshTokens(session, self.models, sessions, clock),
            two_factor=two_factor,
            passkeys=passkeys,
            federation=federation,
            invitations=invitations,
            export=AccountExport(sessions, devices, audit, passkeys, federation),
            debug=app.debug,
            clock=clock,
            hosts=hosts,
            signup=self.signup,
        )
        app.extensions["portcullis"] = state

        self._configure_cookies(app, settings)
        self._configure_hosts(app, hosts)
        if settings.trusted_proxies:
            # Werkzeug's ProxyFix: the client address and scheme the n-th proxy from the app
            # saw. Not X-Forwarded-Host: a proxy that does not set it would pass the
            # client's own on, and links in mails are built from the host.
            hops = settings.trusted_proxies
            app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                app.wsgi_app, x_for=hops, x_proto=hops
            )
        login_manager: LoginManager = getattr(app, "login_manager", None) or LoginManager(app)
        web.init_app(app, state, login_manager)
        # First of all hooks: a request for an untrusted host has no URL adapter, so a hook
        # that builds a URL would fail on it. The API answers for its paths, the pages for all.
        first_hooks = [web.hosts.untrusted_host]
        if settings.api:  # off: no route, hook or document of the API in this app
            api.init_app(app, state)
            first_hooks.insert(0, api.untrusted_host)
        app.before_request_funcs.setdefault(None, [])[:0] = first_hooks
        cli.init_app(app)
        migrating.init_app(app, self.models.User.__tablename__)
        if settings.principal:
            from . import principal  # optional dependency: imported only when asked for

            principal.init_app(app)

    @staticmethod
    def _configure_hosts(app: Flask, hosts: TrustedHosts) -> None:
        # Flask 3.1 checks every request's Host against TRUSTED_HOSTS (400 when foreign or
        # malformed), before any view can build a link from it. See hosts.py.
        app.config["TRUSTED_HOSTS"] = list(hosts.names)
        if hosts.source == "default" and not app.testing:
            logger.log(
                logging.INFO if app.debug else logging.WARNING,
                "Neither TRUSTED_HOSTS nor SERVER_NAME is set: only requests for %s are "
                "answered (any other Host header gets 400). Set TRUSTED_HOSTS or SERVER_NAME "
                "to your site's name to serve it.",
                " and ".join(hosts.names),
            )

    @staticmethod
    def _configure_cookies(app: Flask, settings: Settings) -> None:
        # OWASP ASVS 3.4.1-3.4.3: Secure (outside debug), HttpOnly, SameSite.
        if settings.secure_cookies and not app.debug:
            app.config["SESSION_COOKIE_SECURE"] = True
        app.config["SESSION_COOKIE_HTTPONLY"] = True
        if not app.config.get("SESSION_COOKIE_SAMESITE"):
            app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
        # Remember-me makes the cookie permanent: let it live as long as the server-side record.
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=settings.remember_lifetime)


# -- the session store's cache of users follows every change to them --------------------------


def watch_user_changes() -> None:
    """Once per process: every ORM flush that changes a user's identity fields or roles marks
    their cached entry stale, before the commit and after it (caches.py)."""
    if not event.contains(OrmSession, "before_flush", _before_flush):
        event.listen(OrmSession, "before_flush", _before_flush)
        event.listen(OrmSession, "after_commit", _after_commit)
        event.listen(OrmSession, "after_rollback", rolled_back)


def _users_of_this_app() -> tuple[UserCache, State] | None:
    if not has_app_context():
        return None
    state: State | None = current_app.extensions.get("portcullis")
    if state is None or state.sessions.store.users is None:
        return None
    return state.sessions.store.users, state


def _before_flush(session: OrmSession, *_: object) -> None:
    found = _users_of_this_app()
    if found is not None:
        users, state = found
        ids = changed_users(session, state.models)
        mark_stale(users.cache, session, [users.key(user_id) for user_id in ids])


def _after_commit(session: OrmSession) -> None:
    found = _users_of_this_app()
    if found is not None:
        committed(found[0].cache, session)
