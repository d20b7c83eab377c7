"""Schema-driven fuzz of the HTTP API from its own OpenAPI document (schemathesis): no request it
generates, valid or not, gets a server error, and every response matches the documented schema
for its status. The model is ``UniformPredictor``: the fuzz is about the HTTP contract."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, settings
from schemathesis.checks import positive_data_acceptance
from web_helpers import uniform_app

APP = uniform_app(max_concurrent=2)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def started():
    with TestClient(APP):  # runs the lifespan once: the model and the limiter are in app.state
        yield


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(case):
    # "valid by the schema" is not "an image": random bytes in the 'file' field are rightly a
    # 415 or 422, so schemathesis' check that schema-valid data is accepted does not apply
    response = case.call()
    event(f"{case.method} {case.path} -> {response.status_code}")
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
