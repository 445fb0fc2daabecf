"""Schemathesis explores the API from /openapi.json: no generated request may produce a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from bottlecheck.classifier import Classifier
from bottlecheck.server import create_app

app = create_app({"RATE_LIMIT": "100000/minute"}, classifier=Classifier.load(engine="litert"))
schema = schemathesis.openapi.from_wsgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:200])
    if response.status_code >= 400:
        content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/json"), (case.method, case.path, response.status_code)
        assert "error" in response.json()
