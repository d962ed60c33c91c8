"""The OpenAPI schema served at schema/: complete, describing amounts as strings, where the API is mounted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from django_alipay.api.serializers import AMOUNT_PATTERN
from django_alipay.models import Merchant
from tests.api.conftest import API

pytestmark = pytest.mark.django_db(transaction=True)

OPERATIONS = {
    ("get", "/alipay/api/trades/"),
    ("post", "/alipay/api/trades/"),
    ("get", "/alipay/api/trades/{id}/"),
    ("post", "/alipay/api/trades/{id}/sync/"),
    ("get", "/alipay/api/trades/{id}/refunds/"),
    ("post", "/alipay/api/trades/{id}/refunds/"),
    ("post", "/alipay/api/trades/{id}/reverse/"),
    ("get", "/alipay/api/refunds/"),
    ("get", "/alipay/api/refunds/{id}/"),
    ("get", "/alipay/api/notifications/"),
    ("get", "/alipay/api/notifications/{id}/"),
}


def schema(api: APIClient, url: str = f"{API}schema/") -> dict[str, Any]:
    response = api.get(url, {"format": "json"})
    assert response.status_code == 200, response.content
    document: dict[str, Any] = json.loads(response.content)
    return document


def test_the_schema_is_served_as_yaml_and_json(api: APIClient, shop: Merchant) -> None:
    yaml = api.get(f"{API}schema/")
    assert yaml.status_code == 200
    assert yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.content.startswith(b"openapi: 3.0.3")
    document = schema(api)
    assert document["openapi"] == "3.0.3"
    assert document["info"]["title"] == "django-alipay-global REST API"


def test_the_schema_describes_every_operation_and_nothing_else(api: APIClient, shop: Merchant) -> None:
    paths = schema(api)["paths"]
    assert {(method, path) for path, operations in paths.items() for method in operations} == OPERATIONS


def test_amounts_are_strings_with_a_pattern_never_numbers(api: APIClient, shop: Merchant) -> None:
    components = schema(api)["components"]["schemas"]
    amounts = {
        "TradeCreateRequest": ["amount"],
        "RefundCreateRequest": ["amount"],
        "Trade": ["amount", "refunded_amount", "refund_pending_amount", "refundable_amount"],
        "Refund": ["amount"],
    }
    for component, names in amounts.items():
        for name in names:
            field = components[component]["properties"][name]
            assert field["type"] == "string", (component, name)
            assert field["pattern"] == AMOUNT_PATTERN, (component, name)
    for component in components.values():
        for name, field in component.get("properties", {}).items():
            assert field.get("type") not in ("number",), name


def test_refunds_document_the_required_idempotency_key_and_every_refusal(
    api: APIClient, shop: Merchant
) -> None:
    operation = schema(api)["paths"]["/alipay/api/trades/{id}/refunds/"]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (header["name"], header["required"], header["schema"]["pattern"]) == (
        "Idempotency-Key",
        True,
        "^[!-~]{1,255}$",
    )
    assert set(operation["responses"]) >= {"201", "400", "403", "404", "409", "422", "502", "503"}
    error = operation["responses"]["409"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    assert set(operation["requestBody"]["content"]) == {"application/json"}
    reverse = schema(api)["paths"]["/alipay/api/trades/{id}/reverse/"]["post"]
    assert set(reverse["responses"]) >= {"202", "409"}


def test_the_error_body_is_a_component(api: APIClient, shop: Merchant) -> None:
    components = schema(api)["components"]["schemas"]
    assert components["Error"]["required"] == ["error"]
    detail = components["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "alipay_code", "description", "field"}


def test_the_schema_follows_the_mount_point(api: APIClient, shop: Merchant, settings: Any) -> None:
    settings.ROOT_URLCONF = "tests.api.urls_elsewhere"
    paths = schema(api, "/shops/corner/payments/schema/")["paths"]
    assert "/shops/{shop}/payments/trades/{id}/refunds/" in paths
    assert api.get("/shops/corner/payments/trades/").status_code == 200


def test_the_schema_is_shown_to_api_users_only(make_user: Any, shop: Merchant) -> None:
    from tests.api.conftest import client_for

    assert APIClient().get(f"{API}schema/").status_code in (401, 403)
    customer = client_for(make_user("customer"))
    refused = customer.get(f"{API}schema/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"


def test_without_its_dependencies_the_api_says_what_to_install() -> None:
    script = """
import sys
sys.modules["drf_spectacular"] = None  # as if drf-spectacular were not installed
import django
django.setup()
from django_alipay.exceptions import AlipayConfigurationError
try:
    import django_alipay.api.urls
except ImportError as exc:  # so a project probing for the API simply leaves it out
    print("ImportError:", type(exc).__name__, isinstance(exc, AlipayConfigurationError), exc)
"""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": ""}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError: APIDependencyMissing True django_alipay.api needs drf_spectacular" in result.stdout
    assert "pip install djangorestframework drf-spectacular" in result.stdout
