"""Each merchant says where and how notify_verify is asked: GET on mapi in production by default."""

from __future__ import annotations

from typing import Any

import pytest

from django_alipay import gateway
from django_alipay.forms import MerchantAdminForm

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("environment", "gateway_url", "expected"),
    [
        ("production", "", "https://mapi.alipay.com/gateway.do"),
        ("sandbox", "", "https://mapi.alipaydev.com/gateway.do"),
        ("emulator", "http://127.0.0.1:8765/gateway.do", "http://127.0.0.1:8765/gateway.do"),
    ],
)
def test_notify_verify_defaults_to_get_where_the_references_send_it(
    make_merchant: Any, environment: str, gateway_url: str, expected: str
) -> None:
    merchant = make_merchant(environment=environment, gateway_url=gateway_url)

    client = gateway.client_for(merchant)

    assert (client.notify_verify_url, client.notify_verify_method) == (expected, "GET")


def test_a_merchant_can_name_its_own_notify_verify_url_and_method(make_merchant: Any) -> None:
    merchant = make_merchant(
        environment="production",
        gateway_url="",
        notify_verify_url="https://intlmapi.alipay.com/gateway.do",
        notify_verify_method="POST",
    )

    client = gateway.client_for(merchant)

    assert (client.notify_verify_url, client.notify_verify_method) == (
        "https://intlmapi.alipay.com/gateway.do",
        "POST",
    )


def test_the_shared_client_follows_a_changed_notify_verify_setting(make_merchant: Any) -> None:
    merchant = make_merchant()
    before = gateway.shared_client(merchant)
    merchant.notify_verify_method = "POST"
    merchant.save()

    after = gateway.shared_client(merchant)

    assert after is not before
    assert after.notify_verify_method == "POST"


def test_the_admin_form_edits_both_settings() -> None:
    fields = MerchantAdminForm.base_fields
    assert "notify_verify_url" in fields
    assert [value for value, _ in fields["notify_verify_method"].choices] == ["GET", "POST"]
