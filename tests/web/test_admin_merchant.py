"""The merchant admin: write-only secrets, the URLs Alipay needs, and the credentials test in plain words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from django_alipay.models import Merchant
from django_alipay.protocol import keys
from tests.conftest import TEST_MD5_KEY, TEST_PARTNER
from tests.domain.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def key_pairs() -> dict[str, Any]:
    merchant_key = keys.generate_private_key("RSA2")
    alipay_key = keys.generate_private_key("RSA2")
    return {
        "private": keys.private_key_pem(merchant_key),
        "public": keys.public_key_pem(merchant_key),
        "alipay_public": keys.public_key_pem(alipay_key),
        "other_public": keys.public_key_pem(keys.generate_private_key("RSA2")),
    }


@pytest.fixture
def admin_client(make_staff: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_staff("view_merchant", "change_merchant", "add_merchant"))
    return client


def change_url(merchant: Merchant) -> str:
    return reverse("admin:django_alipay_merchant_change", args=[merchant.pk])


def form_data(merchant: Merchant, **changes: str) -> dict[str, str]:
    data = {
        "name": merchant.name,
        "partner": merchant.partner,
        "environment": merchant.environment,
        "gateway_url": merchant.gateway_url,
        "instore_gateway_url": merchant.instore_gateway_url,
        "sign_type": merchant.sign_type,
        "charset": merchant.charset,
        "currency": merchant.currency,
        "is_active": "on",
        "md5_key": "",
        "private_key": "",
        "alipay_public_key": "",
        "public_key": merchant.public_key,
    }
    data.update(changes)
    return data


def shown(response: HttpResponse) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


# --- secrets are write-only ---------------------------------------------------------------------------------


def test_secrets_are_never_shown_only_their_last_characters_and_fingerprint(
    admin_client: Client, make_merchant: Callable[..., Merchant], key_pairs: dict[str, Any]
) -> None:
    merchant = make_merchant(private_key=key_pairs["private"], alipay_public_key=key_pairs["alipay_public"])
    page = admin_client.get(change_url(merchant)).content.decode()
    assert TEST_MD5_KEY not in page
    body = key_pairs["private"].split("-----")[2].strip().splitlines()
    assert not any(line in page for line in body if len(line) > 20)
    assert "••••" + TEST_MD5_KEY[-4:] in page
    assert merchant.fingerprint("md5_key") in page
    assert keys.fingerprint(key_pairs["private"]) in page
    assert page.count('type="password"') == 3
    listing = admin_client.get(reverse("admin:django_alipay_merchant_changelist")).content.decode()
    assert TEST_MD5_KEY not in listing
    assert "••••" in listing


def test_an_empty_secret_field_keeps_the_stored_secret_and_a_typed_one_replaces_it(
    admin_client: Client, make_merchant: Callable[..., Merchant]
) -> None:
    merchant = make_merchant()
    response = admin_client.post(change_url(merchant), form_data(merchant, name="Renamed shop"))
    assert response.status_code == 302
    merchant.refresh_from_db()
    assert merchant.name == "Renamed shop"
    assert merchant.md5_key is not None
    assert merchant.md5_key.reveal() == TEST_MD5_KEY

    new_key = "N3wKeyN3wKeyN3wKeyN3wKeyN3wKey12"
    assert admin_client.post(change_url(merchant), form_data(merchant, md5_key=new_key)).status_code == 302
    merchant.refresh_from_db()
    assert merchant.md5_key is not None
    assert merchant.md5_key.reveal() == new_key


@pytest.mark.parametrize("md5_key", ["short", "x" * 33, "é" * 32, "k3y4-testsOnly0f32charsXYZ7890ab"])
def test_an_md5_key_of_the_wrong_shape_is_refused(
    admin_client: Client, make_merchant: Callable[..., Merchant], md5_key: str
) -> None:
    merchant = make_merchant()
    response = admin_client.post(change_url(merchant), form_data(merchant, md5_key=md5_key))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["md5_key"]
    assert md5_key not in response.content.decode()  # a refused secret is not echoed back either


def test_alipays_public_key_field_holding_the_merchants_own_key_is_refused(
    admin_client: Client, make_merchant: Callable[..., Merchant], key_pairs: dict[str, Any]
) -> None:
    merchant = make_merchant()
    data = form_data(
        merchant, sign_type="RSA2", private_key=key_pairs["private"], alipay_public_key=key_pairs["public"]
    )
    response = admin_client.post(change_url(merchant), data)
    errors = response.context["adminform"].form.errors
    assert "your own public key" in " ".join(errors["alipay_public_key"])
    assert Merchant.objects.get(pk=merchant.pk).sign_type == "MD5"


def test_a_recorded_public_key_that_is_not_the_private_keys_pair_is_refused(
    admin_client: Client, make_merchant: Callable[..., Merchant], key_pairs: dict[str, Any]
) -> None:
    merchant = make_merchant()
    data = form_data(
        merchant,
        sign_type="RSA2",
        private_key=key_pairs["private"],
        alipay_public_key=key_pairs["alipay_public"],
        public_key=key_pairs["other_public"],
    )
    errors = admin_client.post(change_url(merchant), data).context["adminform"].form.errors
    assert "not the pair" in " ".join(errors["public_key"])


def test_an_rsa2_merchant_needs_both_keys_and_a_one_line_pem_from_a_password_box_is_accepted(
    admin_client: Client, make_merchant: Callable[..., Merchant], key_pairs: dict[str, Any]
) -> None:
    merchant = make_merchant()
    errors = (
        admin_client.post(change_url(merchant), form_data(merchant, sign_type="RSA2"))
        .context["adminform"]
        .form.errors
    )
    assert set(errors) >= {"private_key", "alipay_public_key"}
    # A password input drops line breaks: the pasted PEM arrives on one line.
    data = form_data(
        merchant,
        sign_type="RSA2",
        private_key=key_pairs["private"].replace("\n", ""),
        alipay_public_key=key_pairs["alipay_public"].replace("\n", ""),
        public_key=key_pairs["public"],
    )
    assert admin_client.post(change_url(merchant), data).status_code == 302
    merchant.refresh_from_db()
    assert keys.is_key_pair(merchant.signing_key(), key_pairs["public"])


def test_the_page_is_protected_by_csrf(
    make_staff: Callable[..., User], make_merchant: Callable[..., Merchant]
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff("view_merchant", "change_merchant"))
    merchant = make_merchant()
    assert client.post(change_url(merchant), form_data(merchant, name="Hijacked")).status_code == 403
    assert Merchant.objects.get(pk=merchant.pk).name != "Hijacked"


# --- the URLs Alipay needs ----------------------------------------------------------------------------------


def test_the_notify_and_return_urls_are_shown_for_copying(
    admin_client: Client, make_merchant: Callable[..., Merchant], settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "NOTIFY_URL_BASE": "https://shop.example/alipay/notify/"}
    merchant = make_merchant()
    page = admin_client.get(change_url(merchant)).content.decode()
    assert f'value="https://shop.example/alipay/notify/{merchant.notify_token}/"' in page
    assert f"http://testserver/alipay/return/{merchant.notify_token}/" in page
    assert "is not set" not in page


def test_a_missing_notify_url_base_is_explained(
    admin_client: Client, make_merchant: Callable[..., Merchant]
) -> None:
    page = admin_client.get(change_url(make_merchant())).content.decode()
    assert "NOTIFY_URL_BASE" in page
    assert "no notifications arrive" in page


# --- the credentials test -----------------------------------------------------------------------------------


@pytest.fixture
def md5_merchant(make_merchant: Callable[..., Merchant], gateway: FakeGateway) -> Merchant:
    return make_merchant(gateway_url=gateway.url)


def test_working_credentials_are_confirmed(
    admin_client: Client, md5_merchant: Merchant, gateway: FakeGateway
) -> None:
    response = admin_client.post(
        reverse("admin:django_alipay_merchant_test_credentials", args=[md5_merchant.pk])
    )
    assert response.status_code == 302
    [(level, text)] = shown(response)
    assert level == "success"
    assert "credentials work" in text
    assert "TRADE_NOT_EXIST" in text
    [call] = gateway.called("single_trade_query")
    assert call.params["partner"] == TEST_PARTNER
    assert call.params["out_trade_no"].startswith("CREDENTIAL-CHECK-")


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("ILLEGAL_PARTNER", "does not know partner ID 2088101122136241"),
        ("ILLEGAL_SIGN", "the MD5 key is not the one Alipay holds"),
        ("ILLEGAL_SIGN_TYPE", "does not accept MD5 signatures"),
    ],
)
def test_the_action_explains_what_alipay_refused(
    admin_client: Client, md5_merchant: Merchant, gateway: FakeGateway, code: str, words: str
) -> None:
    gateway.once("single_trade_query", lambda p: FakeGateway.refused(code))
    data = {"action": "test_credentials", "_selected_action": [md5_merchant.pk], "index": "0"}
    response = admin_client.post(reverse("admin:django_alipay_merchant_changelist"), data)
    [(level, text)] = shown(response)
    assert level == "error"
    assert words in text


def test_an_unreachable_gateway_is_explained(
    admin_client: Client, make_merchant: Callable[..., Merchant]
) -> None:
    merchant = make_merchant(gateway_url="http://127.0.0.1:9/gateway.do")
    response = admin_client.post(reverse("admin:django_alipay_merchant_test_credentials", args=[merchant.pk]))
    [(level, text)] = shown(response)
    assert level == "error"
    assert "could not be reached" in text


def test_swapped_keys_are_found_without_asking_alipay(
    admin_client: Client,
    make_merchant: Callable[..., Merchant],
    gateway: FakeGateway,
    key_pairs: dict[str, Any],
) -> None:
    swapped = make_merchant(
        gateway_url=gateway.url,
        sign_type="RSA2",
        private_key=key_pairs["private"],
        alipay_public_key=key_pairs["public"],
    )
    response = admin_client.post(reverse("admin:django_alipay_merchant_test_credentials", args=[swapped.pk]))
    [(level, text)] = shown(response)
    assert level == "error"
    assert "your own public key" in text
    assert not gateway.calls


def test_the_credentials_test_needs_the_change_permission_and_a_post(
    make_staff: Callable[..., User], md5_merchant: Merchant, gateway: FakeGateway
) -> None:
    viewer = Client()
    viewer.force_login(make_staff("view_merchant"))
    url = reverse("admin:django_alipay_merchant_test_credentials", args=[md5_merchant.pk])
    assert viewer.post(url).status_code == 403
    assert (
        'value="test_credentials"'
        not in viewer.get(reverse("admin:django_alipay_merchant_changelist")).content.decode()
    )
    editor = Client()
    editor.force_login(make_staff("view_merchant", "change_merchant"))
    assert editor.get(url).status_code == 405
    assert not gateway.calls
