"""Declare an API endpoint once: the route, its validated body, and its OpenAPI entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError

from .problems import BadBody
from .signup import app_body

api_bp = Blueprint("portcullis_api", "flask_portcullis", url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Spec:
    """What the OpenAPI document says about one operation."""

    path: str
    method: str
    summary: str
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    auth: bool
    errors: tuple[int, ...]  # problem+json answers
    others: tuple[tuple[int, type[BaseModel]], ...]  # further successes, e.g. 202
    tag: str
    parameters: list[dict[str, Any]] = field(default_factory=list)


SPECS: list[Spec] = []


def endpoint(
    path: str,
    method: str,
    *,
    summary: str,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    auth: bool = False,
    errors: tuple[int, ...] = (),
    others: tuple[tuple[int, type[BaseModel]], ...] = (),
    tag: str = "account",
) -> Callable[[F], F]:
    """Register a route; with ``body`` the view gets the validated model as ``data``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if body is not None:
                kwargs["data"] = parse(app_body(body))
            return view(*args, **kwargs)

        flask_path = path.replace("{", "<").replace("}", ">")
        api_bp.add_url_rule(flask_path, view_func=wrapped, methods=[method])
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_names(path)
        ]
        SPECS.append(
            Spec(
                path,
                method.lower(),
                summary,
                body,
                response,
                status,
                auth,
                errors,
                others,
                tag,
                parameters,
            )
        )
        return wrapped  # type: ignore[return-value]

    return decorator


def parse(model: type[BaseModel]) -> BaseModel:
    """Validate the request body against ``model``; BadBody (400/422) tells what is wrong."""
    if not request.is_json:
        raise BadBody(400, "Send a JSON body with Content-Type: application/json.")
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        payload = None
    if not isinstance(payload, dict):
        raise BadBody(400, "The body must be a JSON object.")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in error["loc"]) or "body", "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise BadBody(422, "Some fields are missing or wrong.", errors) from None


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
