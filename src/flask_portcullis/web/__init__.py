"""The HTML adapter: blueprints, Flask-Login bridge, security headers."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user
from werkzeug.exceptions import RequestEntityTooLarge

from ..caller import this_client
from ..exceptions import Throttled
from ..state import State, get_state
from ..usecases import signin
from . import (  # noqa: F401  (registers the routes)
    account,
    admin,
    auth,
    headers,
    health,
    hosts,
    invitation,
    links,
    oauth,
    passkeys,
    recovery_codes,
    two_factor,
)
from .blueprints import admin_bp, bp
from .csrf import csrf_token
from .field_attrs import render_kw_attributes, widget_attributes
from .login_bridge import init_login_manager
from .macros import PRIVATE, PUBLIC
from .urls import cached_url_for


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    # A megabyte "password" stops here, long before anything hashes it.
    return render_template("portcullis/error.html", error=error), 413


@bp.errorhandler(Throttled)
def throttled(error: Throttled) -> ResponseReturnValue:
    signin.throttled(get_state(), this_client(), request.path, error.retry_after)
    minutes = max(1, round(error.retry_after / 60))
    page = render_template("portcullis/throttled.html", minutes=minutes)
    return page, 429, {"Retry-After": str(error.retry_after)}


def csp_additions(state: State) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The host's CSP additions, and the providers' origins as form-action: the sign-in
    buttons' POST answers with a redirect there, which browsers check against it."""
    origins = tuple(o for p in state.settings.oauth_providers for o in p.origins)
    return (*state.settings.csp, ("form-action", origins)) if origins else state.settings.csp


def init_app(app: Flask, state: State, login_manager: LoginManager) -> None:
    init_login_manager(login_manager)
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)
    headers.init_app(app, scope=state.settings.security_headers, extra=csp_additions(state))
    health.init_app(app)
    if state.settings.require_2fa_for_roles:
        app.before_request(two_factor.require_second_factor)

    # Globals, not a context processor, so that templates/portcullis/macros.html works in a
    # host's layout even when imported without context. The sign-out button is a POST form
    # and needs a CSRF token; only the token: error pages render the nav too, and must not
    # parse the request body.
    app.jinja_env.globals.update(
        portcullis_csrf_token=csrf_token,
        portcullis_settings=state.settings,
        portcullis_current_user=current_user,
        # For _macros.html's field(): a field's render_kw, the macro's own attributes winning.
        portcullis_render_kw=render_kw_attributes,
        portcullis_widget_attributes=widget_attributes,
        # The layout's and the nav's fixed links, built once per mount point (web/urls.py).
        portcullis_url=cached_url_for,
        # The macro templates, imported once (web/macros.py): portcullis_macros.account_nav().
        portcullis_macros=PUBLIC,
        portcullis_forms=PRIVATE,
    )
