"""What the schemathesis tests share: the checks every response must pass, one bounded,
deterministic fuzzing profile, and the fixture schemathesis needs under pytest 9.2 (import
it into a module that fuzzes)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Deterministic runs of a bounded size. Timing and filtering depend on the machine, not on
# the API: never fail a CI run on them.
FUZZING = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's ``from_fixture`` reads and renames ``node._nodeid``, which pytest
    9.2 no longer has (it keeps ``_id``); give it one. Harmless once schemathesis adapts."""
    request.node._nodeid = request.node.nodeid
