"""The JSON API adapter (``/api/v1``): bearer tokens, problem+json errors, OpenAPI 3.1."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DatabaseError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.routing import Map, Rule

from ..exceptions import PortcullisError, Throttled
from ..state import State, get_state
from ..usecases import signin
from . import openapi, problems, signup, views  # noqa: F401  (registers the routes)
from .endpoints import SPECS, api_bp
from .events import client

MAX_BODY = 256 * 1024  # a few fields: well above the longest valid body


@api_bp.before_request
def cap_body() -> None:
    request.max_content_length = MAX_BODY


@api_bp.errorhandler(Throttled)
def throttled(error: Throttled) -> Response:
    # Every 429 of the API is recorded, as the pages' are (web/__init__.py).
    signin.throttled(get_state(), client(), request.path, error.retry_after)
    return problems.from_service_error(error)


api_bp.register_error_handler(PortcullisError, problems.from_service_error)
api_bp.register_error_handler(problems.BadBody, problems.from_bad_body)
api_bp.register_error_handler(problems.Unauthorized, problems.from_unauthorized)
api_bp.register_error_handler(HTTPException, problems.from_http)
for outage in (DatabaseError, InterfaceError, PoolTimeout):
    api_bp.register_error_handler(outage, problems.from_outage)


# Every method a client might try, so no answer under /api/v1 falls back to the HTML pages.
ANY_METHOD = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE",
    "LINK", "UNLINK", "QUERY", "SEARCH", "REPORT",
]  # fmt: skip


@api_bp.route("", methods=ANY_METHOD, defaults={"anything": ""}, strict_slashes=False)
@api_bp.route("/", methods=ANY_METHOD, defaults={"anything": ""})
@api_bp.route("/<path:anything>", methods=ANY_METHOD)
def unknown(anything: str) -> Response:
    """Anything else under /api/v1 is problem+json: 405 for a known path, else 404."""
    api_rules = Map(
        [
            Rule(rule.rule, methods=rule.methods, endpoint=rule.endpoint)
            for rule in current_app.url_map.iter_rules()
            if rule.endpoint.startswith(f"{api_bp.name}.") and rule.endpoint != request.endpoint
        ]
    )
    allowed = api_rules.bind("api").allowed_methods(request.path)
    if allowed:
        return problems.problem(
            405,
            "method_not_allowed",
            "Method not allowed",
            f"{request.method} is not allowed here.",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    return problems.problem(404, "not_found", "Not found", "No such endpoint.")


@api_bp.route("/openapi.json")
def openapi_json() -> Response:
    server = request.url_root.rstrip("/") + api_bp.url_prefix  # type: ignore[operator]
    return jsonify(openapi.document(server))


@api_bp.route("/docs")
def docs() -> ResponseReturnValue:
    """A plain page listing every operation, with a link to the JSON document."""
    return render_template(
        "portcullis/api_docs.html", specs=SPECS, spec_url=url_for("portcullis_api.openapi_json")
    )


def untrusted_host() -> Response | None:
    """A foreign or malformed Host header under /api/v1 gets problem+json, like any API error.

    Flask refuses such a request before routing (see hosts.py), so no blueprint handler
    sees it: this app-wide hook (run first, see extension.py) speaks for the API's paths.
    """
    error = request.routing_exception
    prefix = api_bp.url_prefix or ""
    ours = request.path == prefix or request.path.startswith(prefix + "/")
    if isinstance(error, SecurityError) and ours:
        detail = "This site does not answer to that host name."
        return problems.problem(400, "untrusted_host", "Untrusted host", detail)
    return None


def init_app(app: Flask, state: State) -> None:
    with app.app_context():  # a sign-up field the API cannot take fails now, not at sign-up
        signup.register_body(state.signup)
    app.register_blueprint(api_bp)
    # The API authenticates by bearer token only, never by cookie: CSRF does not apply.
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(api_bp)
    origins = set(state.settings.cors_origins)
    if origins:  # CORS is off unless origins are listed (no wildcard, no credentials)

        @app.after_request
        def cors(response: Response) -> Response:
            origin = request.headers.get("Origin", "")
            if request.blueprint == api_bp.name and origin in origins:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
                response.headers["Access-Control-Max-Age"] = "600"
                response.headers["Access-Control-Expose-Headers"] = "Retry-After, WWW-Authenticate"
                response.vary.add("Origin")
            return response
