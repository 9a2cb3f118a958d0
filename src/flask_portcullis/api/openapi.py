"""Build the OpenAPI 3.1 document from the endpoint registry and the pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from . import schemas
from .endpoints import SPECS, Spec
from .signup import app_body

REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "Malformed request or link token",
    401: "Missing, invalid or expired credentials",
    403: "Forbidden for this account",
    404: "Not found",
    409: "Conflict with an existing account",
    413: "The body is too large",
    422: "Validation failed",
    429: "Too many requests; see Retry-After",
    503: "A dependency is unavailable; see Retry-After",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(spec: Spec, body: type[BaseModel] | None) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": _ref(schemas.Problem)}}
    success: dict[str, Any] = {"description": REASONS.get(spec.status, "OK")}
    if spec.response is not None:
        success["content"] = {"application/json": {"schema": _ref(spec.response)}}
    elif spec.path == "/jwks.json":
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(spec.status): success}
    error_codes = set(spec.errors) | ({400, 413, 422} if body else set()) | {503}
    for code, model in spec.others:
        responses[str(code)] = {
            "description": REASONS[code],
            "content": {"application/json": {"schema": _ref(model)}},
        }
    for code in sorted(error_codes):
        responses[str(code)] = {"description": REASONS[code], "content": problem}
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": spec.method + spec.path.replace("/", "_").replace(".", "_"),
        "tags": [spec.tag],
        "responses": responses,
    }
    if spec.parameters:
        operation["parameters"] = spec.parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if spec.auth:
        operation["security"] = [{"bearer": []}]
    return operation


def document(server_url: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of the current app for ``server_url`` (the ``/api/v1``
    prefix): its register body has the app's own sign-up fields."""
    paths: dict[str, dict[str, Any]] = {}
    models: set[type[BaseModel]] = {schemas.Problem, schemas.FieldProblem, schemas.Accepted}
    for spec in SPECS:
        body = None if spec.body is None else app_body(spec.body)
        paths.setdefault(spec.path, {})[spec.method] = _operation(spec, body)
        models.update(m for m in (body, spec.response) if m is not None)
        models.update(model for _, model in spec.others)
    components: dict[str, Any] = {}
    for model in sorted(models, key=lambda m: m.__name__):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portcullis account API",
            "version": "1",
            "description": "Accounts, sign-in and sessions for "
            "flask_portcullis. Errors are application/problem+json (RFC 9457).",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
