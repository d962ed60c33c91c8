"""System checks: each id fires on the setup it describes, and only then."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

from django_alipay.checks import check_merchants, check_optional_parts, check_settings
from django_alipay.models import Merchant
from django_alipay.protocol import keys
from tests.conftest import TEST_MD5_KEY

RSA_A = keys.generate_private_key("RSA2")
RSA_B = keys.generate_private_key("RSA2")
DSA = keys.generate_private_key("DSA", bits=1024)


def ids(messages: list[Any]) -> list[str]:
    return sorted(m.id for m in messages)


def errors(messages: list[Any]) -> list[str]:
    return [i for i in ids(messages) if ".E" in i]


def merchant_ids(**fields: Any) -> list[str]:
    merchant = Merchant.objects.create(
        **{
            "name": "M",
            "partner": "2088101122136241",
            "environment": "emulator",
            "gateway_url": "http://127.0.0.1:1/gateway.do",
            **fields,
        }
    )
    try:
        return ids(check_merchants(databases=["default"]))
    finally:
        merchant.delete()


def test_the_test_settings_pass_the_config_checks() -> None:
    assert ids(check_settings()) == []


def test_e001_alipay_must_be_a_dict() -> None:
    with override_settings(ALIPAY=["x"]):
        assert ids(check_settings()) == ["django_alipay.E001"]


@pytest.mark.parametrize(
    ("keys_value", "expected"), [([], "E002"), (None, "E002"), ("a-key", "E003"), (["nope"], "E003")]
)
def test_e002_e003_fernet_keys(keys_value: Any, expected: str) -> None:
    with override_settings(ALIPAY={"FERNET_KEYS": keys_value}):
        assert ids(check_settings()) == [f"django_alipay.{expected}"]


def test_e003_never_quotes_a_key() -> None:
    with override_settings(ALIPAY={"FERNET_KEYS": [Fernet.generate_key().decode(), "not-a-key-123"]}):
        [message] = check_settings()
    assert "not-a-key-123" not in message.msg
    assert "[1]" in message.msg


@pytest.mark.parametrize(
    "extra",
    [{"REFUND_WINDOW_DAYS": -1}, {"NOTIFY_VERIFY_TIMEOUT": 0}, {"ALLOWED_SIGN_TYPES": ["md5"]},
     {"REVERSE_SERVICE": "x"}, {"NOTIFY_URL_BASE": "shop.example/notify"}, {"RECONCILE_BATCH_SIZE": 0},
     {"NOTIFY_MAX_IN_FLIGHT": 0}, {"NOTIFY_MAX_IN_FLIGHT": "8"}, {"NOTIFY_MAX_IN_FLIGHT": True}],
)  # fmt: skip
def test_e005_values_of_the_wrong_type(extra: dict[str, Any], settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, **extra}):
        assert ids(check_settings()) == ["django_alipay.E005"]


@pytest.mark.parametrize(
    "extra",
    [{"NOTIFY_VERIFY": "False"}, {"REFUND_SYNC": 0}, {"CELERY_ENABLED": "yes"}, {"API_ENABLED": 1},
     {"TASK_QUEUE": ""}, {"REFUND_TASK_QUEUE": None}, {"UNKNOWN_TOKEN_ROWS_PER_MINUTE": -1},
     {"STRANDED_REFUND_AFTER": "30"}, {"RETURN_REDIRECT": 5}, {"DEFAULT_MERCHANT": 2088101122136241},
     {"API_PERMISSION_CLASSES": "rest_framework.permissions.IsAdminUser"},
     {"API_MERCHANTS_FOR_USER": "no.such.function"}, {"HTTP_READ_TIMEOUT": float("inf")}],
)  # fmt: skip
def test_e005_covers_every_key_without_a_check_of_its_own(extra: dict[str, Any], settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, **extra}):
        assert ids(check_settings()) == ["django_alipay.E005"]
        assert errors(check_optional_parts()) == []  # a wrong switch is E005 only, never a crash


def test_e005_names_the_key_what_it_takes_and_what_was_written(settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, "NOTIFY_MAX_IN_FLIGHT": "8"}):
        [message] = check_settings()

    assert (
        message.msg
        == "ALIPAY['NOTIFY_MAX_IN_FLIGHT'] must be a positive integer or None (no limit), not '8'."
    )


@pytest.mark.parametrize("limit", [None, 1, 64])
def test_an_in_flight_limit_is_a_positive_integer_or_none(limit: int | None, settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, "NOTIFY_MAX_IN_FLIGHT": limit}):
        assert ids(check_settings()) == []


def test_w002_notify_verify_off_in_production(settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, "NOTIFY_VERIFY": False}, DEBUG=False):
        assert ids(check_settings()) == ["django_alipay.W002"]
    with override_settings(ALIPAY={**settings.ALIPAY, "NOTIFY_VERIFY": False}, DEBUG=True):
        assert ids(check_settings()) == []


def test_e020_e021_e022_optional_parts(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, "CELERY_ENABLED": True, "API_ENABLED": True}):
        # Celery is installed; DRF is installed but not in INSTALLED_APPS.
        assert errors(check_optional_parts()) == ["django_alipay.E021"]
        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a: None if name == "celery" else real(name)
        )
        assert errors(check_optional_parts()) == ["django_alipay.E020", "django_alipay.E021"]
    with override_settings(ALIPAY={**settings.ALIPAY, "REFUND_DISPATCHER": "no.such.function"}):
        assert errors(check_optional_parts()) == ["django_alipay.E022"]


def test_e021_says_rest_framework_is_missing_from_installed_apps_when_it_is_installed(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec  # installed or not here (tox -e core), the check must see it installed
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: real("django") if name == "rest_framework" else real(name),
    )
    with override_settings(ALIPAY={**settings.ALIPAY, "API_ENABLED": True}):
        (message,) = check_optional_parts()

    assert message.id == "django_alipay.E021"
    assert "not in INSTALLED_APPS" in message.msg
    assert "not installed" not in message.msg
    assert message.hint == "Add 'rest_framework' to INSTALLED_APPS."


def test_a_shop_with_rest_framework_that_never_set_api_enabled_is_told_its_api_is_not_mounted(
    settings: Any,
) -> None:
    apps = [*settings.INSTALLED_APPS, "rest_framework"]
    without_key = {k: v for k, v in settings.ALIPAY.items() if k != "API_ENABLED"}
    with override_settings(INSTALLED_APPS=apps, ALIPAY=without_key):
        (message,) = check_optional_parts()
    assert message.id == "django_alipay.W013"
    assert "does not mount the REST API" in message.msg
    assert "API_ENABLED'] = True" in (message.hint or "")
    for choice in (True, False):
        with override_settings(INSTALLED_APPS=apps, ALIPAY={**without_key, "API_ENABLED": choice}):
            assert check_optional_parts() == []
    with override_settings(ALIPAY=without_key):  # no DRF in the project: nothing to say
        assert check_optional_parts() == []


def test_e021_says_rest_framework_is_not_installed_when_it_cannot_be_imported(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rest_framework" else real(name)
    )
    with override_settings(ALIPAY={**settings.ALIPAY, "API_ENABLED": True}):
        (message,) = check_optional_parts()

    assert message.id == "django_alipay.E021"
    assert "Django REST framework is not installed" in message.msg


# --- merchant checks (database) ----------------------------------------------------------------------------

pem = keys.private_key_pem
public = keys.public_key_pem


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"sign_type": "MD5", "md5_key": TEST_MD5_KEY}, []),
        ({"sign_type": "MD5"}, ["E010"]),
        ({"sign_type": "MD5", "md5_key": "short"}, ["E011"]),
        ({"sign_type": "MD5", "md5_key": "x" * 31 + "-"}, ["E011"]),
        ({"sign_type": "RSA2", "private_key": pem(RSA_A), "alipay_public_key": public(RSA_B)}, []),
        ({"sign_type": "RSA2", "alipay_public_key": public(RSA_B)}, ["E010"]),
        ({"sign_type": "RSA2", "private_key": pem(RSA_A)}, ["E010"]),
        ({"sign_type": "RSA2", "private_key": "garbage", "alipay_public_key": public(RSA_B)}, ["E012"]),
        ({"sign_type": "RSA2", "private_key": pem(DSA), "alipay_public_key": public(RSA_B)}, ["E012"]),
        ({"sign_type": "RSA2", "private_key": pem(RSA_A), "alipay_public_key": "nope"}, ["E013"]),
        ({"sign_type": "RSA2", "private_key": pem(RSA_A), "alipay_public_key": public(RSA_B),
          "public_key": keys.public_key_one_line(RSA_B)}, ["E014"]),
        ({"sign_type": "RSA2", "private_key": pem(RSA_A), "alipay_public_key": public(RSA_A)}, ["E015"]),
        ({"sign_type": "RSA2", "environment": "sandbox", "gateway_url": "", "private_key": pem(RSA_A),
          "alipay_public_key": public(RSA_B)}, ["E016", "W010"]),
        ({"md5_key": TEST_MD5_KEY, "gateway_url": ""}, ["E018", "W011"]),
        ({"md5_key": TEST_MD5_KEY, "environment": "production", "gateway_url": "https://mapi.alipaydev.com/gateway.do"},
         ["W010"]),
    ],
)  # fmt: skip
def test_merchant_checks(fields: dict[str, Any], expected: list[str]) -> None:
    found = [i for i in merchant_ids(**fields) if i != "django_alipay.W011" or "W011" in expected]
    assert found == [f"django_alipay.{e}" for e in expected]


@pytest.mark.django_db
def test_w011_an_active_emulator_merchant_while_debug_is_false() -> None:
    with override_settings(DEBUG=False):
        assert merchant_ids(md5_key=TEST_MD5_KEY) == ["django_alipay.W011"]
    with override_settings(DEBUG=True):
        assert merchant_ids(md5_key=TEST_MD5_KEY) == []
    assert merchant_ids(md5_key=TEST_MD5_KEY, is_active=False) == []


@pytest.mark.django_db
def test_e017_a_sign_type_that_is_not_allowed(settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, "ALLOWED_SIGN_TYPES": ["RSA2"]}, DEBUG=True):
        assert merchant_ids(md5_key=TEST_MD5_KEY) == ["django_alipay.E017"]


@pytest.mark.django_db
def test_e004_secrets_the_keys_cannot_decrypt(settings: Any) -> None:
    Merchant.objects.create(
        name="Old", partner="2088101122136241", md5_key=TEST_MD5_KEY, environment="sandbox"
    )
    with override_settings(
        ALIPAY={**settings.ALIPAY, "FERNET_KEYS": [Fernet.generate_key().decode()]}, DEBUG=True
    ):
        messages = check_merchants(databases=["default"])
    assert "django_alipay.E004" in ids(messages)
    assert all(TEST_MD5_KEY not in m.msg for m in messages)


@pytest.mark.django_db
def test_w003_a_default_merchant_that_does_not_exist(settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, "DEFAULT_MERCHANT": "Nobody"}):
        assert ids(check_merchants(databases=["default"])) == ["django_alipay.W003"]


@pytest.mark.django_db
def test_merchant_checks_stay_quiet_before_the_tables_exist() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_alipay_merchant RENAME TO django_alipay_merchant_moved")
    try:
        assert check_merchants(databases=["default"]) == []
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_alipay_merchant_moved RENAME TO django_alipay_merchant")


def test_merchant_checks_run_only_when_a_database_is_named() -> None:
    assert check_merchants(databases=None) == []


@pytest.mark.django_db
def test_the_checks_are_registered(make_merchant: Callable[..., Merchant]) -> None:
    make_merchant(md5_key="short")
    assert "django_alipay.E011" in ids(run_checks(databases=["default"]))
