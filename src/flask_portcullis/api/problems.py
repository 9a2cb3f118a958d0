"""Every API error as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, json
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from werkzeug.exceptions import HTTPException

from ..exceptions import (
    AccountInactive,
    Conflict,
    DeliveryFailed,
    EmailNotVerified,
    EmailTaken,
    ErrorCode,
    FieldError,
    InvalidCode,
    InvalidCredentials,
    NotFound,
    PasswordRejected,
    PortcullisError,
    Throttled,
    TokenExpired,
    TokenInvalid,
    Unavailable,
    UsernameTaken,
)

logger = logging.getLogger("flask_portcullis.api")
MIMETYPE = "application/problem+json"

STATUS: list[tuple[type[PortcullisError], int]] = [
    (InvalidCredentials, 401),
    (InvalidCode, 401),
    (AccountInactive, 403),
    (EmailNotVerified, 403),
    (UsernameTaken, 409),
    (EmailTaken, 409),
    (Conflict, 409),
    (PasswordRejected, 422),
    (FieldError, 422),
    (TokenExpired, 400),
    (TokenInvalid, 400),
    (NotFound, 404),
    (Throttled, 429),
    (DeliveryFailed, 503),
    (Unavailable, 503),
]


class BadBody(Exception):
    """The request body is not the JSON the endpoint expects (400) or fails validation (422)."""

    def __init__(
        self, status: int, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


class Unauthorized(Exception):
    """No usable bearer token (RFC 6750 3): 401 with ``WWW-Authenticate``."""

    def __init__(self, detail: str, *, invalid: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid = invalid


def problem(
    status: int,
    code: str,
    title: str,
    detail: str = "",
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": errors or [],
    }
    response = Response(json.dumps(body), status=status, mimetype=MIMETYPE, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def from_service_error(error: PortcullisError) -> Response:
    status = next((code for kind, code in STATUS if isinstance(error, kind)), 400)
    errors: list[dict[str, str]] = []
    if isinstance(error, PasswordRejected):
        errors = [{"field": "password", "message": reason} for reason in error.reasons]
    elif isinstance(error, FieldError):
        errors = [{"field": error.field, "message": error.message}]
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, Throttled) else None
    if isinstance(error, Unavailable | DeliveryFailed):
        headers = {"Retry-After": "30"}
    if status == 401:  # RFC 9110 15.5.2: every 401 names a scheme
        headers = {"WWW-Authenticate": 'Bearer realm="api"'}
    title = {
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        422: "Unprocessable content",
        429: "Too many requests",
        503: "Service unavailable",
    }.get(status, "Bad request")
    return problem(status, str(error.code), title, str(error), errors=errors, headers=headers)


def from_bad_body(error: BadBody) -> Response:
    title = "Bad request" if error.status == 400 else "Unprocessable content"
    return problem(
        error.status, str(ErrorCode.INVALID_FIELD), title, error.detail, errors=error.errors
    )


def from_unauthorized(error: Unauthorized) -> Response:
    challenge = 'Bearer realm="api"'
    if error.invalid:
        challenge += ', error="invalid_token"'
    return problem(
        401, "unauthorized", "Unauthorized", error.detail, headers={"WWW-Authenticate": challenge}
    )


def from_http(error: HTTPException) -> Response:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    return problem(status, code, error.name, error.description or "")


def from_outage(error: Exception) -> Response:
    if isinstance(error, IntegrityError | DataError | ProgrammingError):
        raise error  # a bug, not an outage
    logger.error("API request failed on an outage: %s", error.__class__.__name__)
    return problem(
        503,
        "unavailable",
        "Service unavailable",
        "Please try again shortly.",
        headers={"Retry-After": "30"},
    )
