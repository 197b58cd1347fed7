"""The API against its own OpenAPI document (schemathesis): for every operation, generated requests —
valid and invalid, for unknown ids and for a real case and task — never get a 5xx, and every answer
matches the schema the document gives for its status.

Bounded (20 examples an operation, on each database) so it runs in the normal test run. Every
operation is tried, and the failures of all of them are reported together.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from web.accounts import create_api_token

from .api_support import Api

EXAMPLES = 20  # an operation, spread over its kinds of request
SKIPPED = {("DELETE", "/api/session")}  # it would end the token the other requests use


@pytest.fixture
def real(client):
    """A case with a completed task and open ones: path parameters that find something."""
    api = Api(client)
    number = api.accepted()
    licence = api.work(number, "licence", "scjg1")
    seal = api.open_task(number, "seal")
    return {"number": number, "task_ids": [licence, seal]}


def test_the_api_keeps_its_contract(app, real):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    token = create_api_token(app.state.services.engine.db, "zwfw1", "schemathesis", "test")
    headers = {"Authorization": f"Bearer {token}"}
    checks = [not_a_server_error, response_schema_conformance]
    failures: dict[str, str] = {}
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        strategies = [
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        ]
        if "{number}" in operation.path:
            strategies.append(operation.as_strategy(path_parameters={"number": real["number"]}))
        if "{task_id}" in operation.path:
            for task_id in real["task_ids"]:
                strategies.append(operation.as_strategy(path_parameters={"task_id": task_id}))

        @given(case=st.one_of(strategies))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            case.call_and_validate(headers=headers, checks=checks)

        tried += 1
        try:
            run()
        except Exception as exc:  # one operation's failure must not hide the others'
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:3000]
    assert tried >= 35
    assert not failures, "\n\n".join(f"{where}:\n{what}" for where, what in failures.items())
