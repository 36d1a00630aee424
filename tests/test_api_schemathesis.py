"""Property-based tests of the whole API from its own OpenAPI document (schemathesis):
for inputs generated from the schema, valid and invalid, no answer is a server error,
and every answer matches the response schema documented for its status.

Kept small (a few examples per operation, each mode) so that the suite stays fast;
raise EXAMPLES to search harder (60 found nothing either, at the time of writing)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation import GenerationMode

from api_support import api_in_process
from sluice.api.app import create_app

EXAMPLES = 6
FLOW = """
key: onboarding
trigger: {event: $signup}
steps:
  - {id: welcome, email: {subject: Hi, html: <p>Hi</p>}}
  - {id: settle, wait: 2d}
"""


@pytest.fixture
def schema(app):
    """The API with some data in it (a flow, a visitor, a session, a template), and
    the schema it serves."""
    web = create_app(app)
    with api_in_process(app) as api:
        api.put_flow(FLOW)
        api.post("/events", json={"type": "$signup", "email": "ada@example.com"})
        api.put("/templates/nudge", json={"subject": "s", "html": "h"})
        loaded = schemathesis.openapi.from_asgi("/api/openapi.json", web)
        # Streams never end; tests/test_api_streams.py covers them over a real socket.
        yield loaded.exclude(path_regex=r"/stream$"), api


def test_no_generated_request_makes_a_server_error_or_breaks_the_schema(schema):
    loaded, api = schema
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) > 25
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz(operation, mode, api))
    ]
    assert not failures, "\n\n".join(failures)


def fuzz(operation, mode: GenerationMode, api) -> str | None:
    """Why requests generated for the operation failed the checks; None if none did."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        headers = dict(case.headers or {})
        if "Authorization" not in headers:
            headers.update(api.basic if case.path.startswith("/api/v1/") else api.bearer)
        query = dict(case.query or {})
        if case.path.startswith("/api/v1/") and case.method == "GET":
            query.setdefault("site_uuid", api.site_uuid)
        case.headers, case.query = headers, query
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    try:
        check()
    except Unsatisfiable:
        return None  # nothing to make invalid (an operation without parameters)
    except Exception as error:  # every operation is tried; all failures are reported
        return f"{operation.label} ({mode.value}): {error}"
    return None
