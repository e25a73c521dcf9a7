"""The committed OpenAPI document is current, and the running server honours it (schemathesis:
no 5xx, responses match their schemas, documented statuses and content types only)."""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from agent_platform.gateway.openapi import DOCUMENT_PATH, render


def test_committed_openapi_document_is_current():
    committed = DOCUMENT_PATH.read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(render()), (
        "docs/openapi.json is stale: run `python -m agent_platform.gateway.openapi`"
    )
    assert json.loads(committed)["openapi"].startswith("3.1")


def test_the_server_honours_its_openapi_document(gateway):
    """Each operation with a few generated requests, valid and invalid."""
    schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def honours(case):
            case.call_and_validate(
                base_url=gateway.url,
                headers={"X-Tenant": "handbook"},
                timeout=60,
                # A schema-valid request may still be refused with 422 for what a schema cannot
                # say (no message with role `user`, say); every other check runs.
                excluded_checks=[positive_data_acceptance],
            )

        honours()
