"""Schemathesis against ``/api/v1/openapi.json``: no 5xx, and every response as documented.

The app runs in-process (WSGI), fresh for this module, with conftest's relaxed sign-in and
sign-up limits and relaxed mail limits (so the success answers get checked too, not only
429s). Each operation gets a bounded, derandomized run: the schema's examples,
schemathesis' coverage cases (boundaries, wrong types, missing fields, unexpected methods)
and ``MAX_EXAMPLES`` generated requests, valid and invalid. Operations behind a bearer token
get a real one, for a user whose password nothing can guess (so the fuzzed password change
never succeeds and the token stays good for the whole run).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask

from flask_portcullis import get_state

from .conftest import make_app, make_user
from .fuzzing import CHECKS, FUZZING
from .fuzzing import _node_id_for_schemathesis as _node_id_for_schemathesis

RELAXED_MAIL_LIMITS: dict[str, Any] = {
    "PORTCULLIS_MAIL_LIMIT_PER_ADDRESS": "100000/hour",
    "PORTCULLIS_MAIL_LIMIT_PER_CLIENT": "100000/hour",
}


@pytest.fixture(scope="module")
def schema_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """A fresh app for this module only: the fuzzer registers many users."""
    app = make_app(tmp_path_factory.mktemp("api-schema"), None, **RELAXED_MAIL_LIMITS)
    yield app
    with app.app_context():
        get_state(app).db.engine.dispose()


@pytest.fixture(scope="module")
def access_token(schema_app: Flask) -> str:
    password = secrets.token_urlsafe(24)
    make_user(schema_app, "schema-user", "schema-user@example.com", password)
    response = schema_app.test_client().post(
        "/api/v1/login", json={"identity": "schema-user", "password": password}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["access_token"]
    return token


@pytest.fixture(scope="module")
def api_schema(schema_app: Flask, access_token: str) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            # The bearer security scheme of the document, filled with a real token.
            "auth": {"openapi": {"bearer": {"bearer": access_token}}},
            "generation": {"mode": "all", "deterministic": True, "database": "none"},
        }
    )
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", schema_app, config=config)


def test_the_document_is_valid_openapi_3_1(api_schema: schemathesis.BaseSchema) -> None:
    document: dict[str, Any] = dict(api_schema.raw_schema)
    assert document["openapi"].startswith("3.1.")
    api_schema.validate()  # the OpenAPI 3.1 meta-schema, as shipped with schemathesis
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name  # each one valid JSON Schema 2020-12
    # Every operation loads (its references resolve); test_api.py checks none is missing.
    operations = [api_schema[path][method] for path in api_schema for method in api_schema[path]]
    assert len(operations) >= 14


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@FUZZING
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], access_token: str
) -> None:
    response = case.call_and_validate(checks=CHECKS)
    authorization = case.headers.get("Authorization") if case.headers else None
    if authorization == f"Bearer {access_token}":
        # The valid token itself is never refused ("unauthorized" is a missing or bad token).
        assert response.status_code != 401 or response.json()["code"] != "unauthorized"
