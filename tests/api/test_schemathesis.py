"""Schemathesis against the API's own OpenAPI schema, over HTTP to a live server, as an admin, on PostgreSQL.

The engine the ``schemathesis run`` command uses is driven in-process: every phase (the schema's examples,
coverage of each constraint's edges, fuzzing with up to 20 examples per operation, stateful sequences) and
every check listed below; the test fails on any failing check or error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import Status, events, from_schema

from django_alipay.models import Merchant, Trade

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "use_after_free",
    "unsupported_method",
)
CONFIG: dict[str, Any] = {
    "workers": 1,
    "seed": 20240501,
    "generation": {"max-examples": 20, "mode": "all", "database": "none"},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": True, "max-steps": 20},
    },
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    "auth": {"basic": {"username": "admin", "password": "pw"}},
    # Django's test server answers slowly on kept-alive connections (~40 ms a request here): close each one.
    "headers": {"Connection": "close"},
}


def test_every_operation_conforms_to_the_schema(shop: Merchant, admin_user: Any, api_server: str) -> None:
    schema = schemathesis.openapi.from_url(
        f"{api_server}/alipay/api/schema/?format=json",
        config=schemathesis.Config.from_dict(CONFIG),
        auth=("admin", "pw"),
        timeout=30,
    )
    problems: list[str] = []
    checked: Counter[str] = Counter()
    operations: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            operations.add(event.recorder.label)
            for case_id, nodes in event.recorder.checks.items():
                for node in nodes:
                    checked[node.name] += 1
                    if node.status != Status.SUCCESS and node.failure_info is not None:
                        case = event.recorder.cases[case_id].value
                        problems.append(
                            f"{node.name}: {node.failure_info.failure.title}\n{case.as_curl_command()}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"error: {event!r}")
        elif isinstance(event, events.EngineFinished):
            problems += [f"failure: {failure!r}" for failure in event.failures]
    print(f"schemathesis: {len(operations)} scenarios/operations, checks run: {dict(checked)}")
    assert problems == [], "\n\n".join(problems[:20])
    assert checked["not_a_server_error"] > 100
    # Valid requests got through to the domain too: the run created trades.
    assert Trade.objects.exists()
    assert {"negative_data_rejection", "response_schema_conformance", "ignored_auth"} <= set(checked)
