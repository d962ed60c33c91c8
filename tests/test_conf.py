"""The ALIPAY settings dict: defaults, lazy reading, resets on change, unknown keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import override_settings

from django_alipay.checks import check_settings
from django_alipay.conf import DEFAULTS, app_settings
from django_alipay.exceptions import AlipayConfigurationError


def test_every_setting_has_a_default_and_a_one_line_description() -> None:
    for name, setting in DEFAULTS.items():
        assert name.isupper()
        assert setting.description
        assert "\n" not in setting.description


def test_unset_keys_read_their_defaults_and_set_ones_their_values() -> None:
    with override_settings(ALIPAY={"FERNET_KEYS": ["k"], "REFUND_WINDOW_DAYS": 90}):
        assert app_settings.REFUND_WINDOW_DAYS == 90
        assert app_settings.ACKNOWLEDGEMENT == "success"
        assert app_settings.NOTIFY_VERIFY is True
        assert app_settings.REFUND_WINDOW_DAYS is not DEFAULTS["REFUND_WINDOW_DAYS"].default


def test_values_are_read_again_after_a_settings_change() -> None:
    with override_settings(ALIPAY={"ACKNOWLEDGEMENT": "SUCCESS"}):
        assert app_settings.ACKNOWLEDGEMENT == "SUCCESS"
    assert app_settings.ACKNOWLEDGEMENT == "success"


def test_an_unknown_attribute_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(AttributeError, match="REFUND_WINDOW_DAYS"):
        app_settings.REFUND_WINDOW  # noqa: B018


def test_importing_the_module_reads_no_settings() -> None:
    import subprocess
    import sys

    # With no settings configured at all, importing conf must not touch django.conf.settings.
    code = "import django_alipay.conf as c; print(type(c.app_settings).__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": ""}
    )
    assert out.stdout.strip() == "AppSettings"


@pytest.mark.parametrize(
    ("key", "suggestion"), [("REFUND_WINDOW", "REFUND_WINDOW_DAYS"), ("fernet_keys", "FERNET_KEYS")]
)
def test_an_unknown_key_is_warned_about_with_close_matches(key: str, suggestion: str, settings: Any) -> None:
    with override_settings(ALIPAY={**settings.ALIPAY, key: 1}):
        warnings = [m for m in check_settings() if m.id == "django_alipay.W001"]
    assert len(warnings) == 1
    assert repr(key) in warnings[0].msg
    assert suggestion in (warnings[0].hint or "")


def test_every_default_is_a_value_its_own_setting_takes() -> None:
    for name, setting in DEFAULTS.items():
        setting.convert(setting.default)  # raises, naming the key, when a default does not fit its kind
        assert setting.takes, name


@pytest.mark.parametrize(
    ("key", "written", "read"),
    [
        ("HTTP_TOTAL_TIMEOUT", 12, 12.0),
        ("HTTP_CONNECT_TIMEOUT", 2, 2.0),
        ("REFUND_SPACING", 0, 0.0),
        ("REFUND_MAX_WAIT", 4, 4.0),
        ("RECONCILE_REFUND_AGE", 60, 60.0),
    ],
)
def test_seconds_are_read_as_floats(key: str, written: int, read: float, settings: Any) -> None:
    settings.ALIPAY = {**settings.ALIPAY, key: written}

    value = getattr(app_settings, key)

    assert type(value) is float
    assert value == read


def test_a_dotted_path_is_read_as_the_callable_it_names(settings: Any) -> None:
    from django_alipay.access import merchants_for_user
    from django_alipay.domain import refunds

    assert app_settings.REFUND_DISPATCHER is refunds.submit
    assert app_settings.API_MERCHANTS_FOR_USER is merchants_for_user
    settings.ALIPAY = {**settings.ALIPAY, "REFUND_DISPATCHER": "django_alipay.access.merchants_for_user"}

    assert app_settings.REFUND_DISPATCHER is merchants_for_user


def test_a_value_of_the_wrong_kind_is_an_error_naming_the_key_what_it_takes_and_what_was_written(
    settings: Any,
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "HTTP_TOTAL_TIMEOUT": "30"}

    with pytest.raises(AlipayConfigurationError) as raised:
        app_settings.HTTP_TOTAL_TIMEOUT  # noqa: B018

    assert str(raised.value) == "ALIPAY['HTTP_TOTAL_TIMEOUT'] must be a positive number of seconds, not '30'."


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("NOTIFY_VERIFY", "False", "True or False"),
        ("REFUND_MAX_WAIT", -1, "a number of seconds >= 0"),
        ("NOTIFY_MAX_IN_FLIGHT", True, "a positive integer"),
        ("REVERSE_SERVICE", "CANCEL", "'cancel' or 'spot_reverse'"),
        ("RETURN_URL", "/shop/done/", "an absolute http(s) URL"),
        ("REFUND_DISPATCHER", "no.such.function", "cannot be imported"),
        ("REFUND_DISPATCHER", "django_alipay.conf.SETTING_NAME", "is not callable"),
        ("TASK_QUEUE", "", "a non-empty string"),
    ],
)
def test_each_kind_of_wrong_value_is_refused_where_it_is_read(
    key: str, value: Any, expected: str, settings: Any
) -> None:
    settings.ALIPAY = {**settings.ALIPAY, key: value}

    with pytest.raises(AlipayConfigurationError, match=re.escape(f"ALIPAY[{key!r}] ")) as raised:
        getattr(app_settings, key)

    assert expected in str(raised.value)


def test_a_wrong_fernet_keys_value_is_refused_without_quoting_it(settings: Any) -> None:
    settings.ALIPAY = {**settings.ALIPAY, "FERNET_KEYS": "Pfb9ofqBIaATt0WUh3VQZz7Wk7q2n2aBoXCvtp0Jm8Q="}

    with pytest.raises(AlipayConfigurationError, match="must be a list of keys") as raised:
        app_settings.FERNET_KEYS  # noqa: B018

    assert "Pfb9" not in str(raised.value)


def test_an_override_through_the_settings_fixture_takes_effect_at_once(settings: Any) -> None:
    assert app_settings.HTTP_TOTAL_TIMEOUT == 10.0  # tests/settings.py
    settings.ALIPAY = {**settings.ALIPAY, "HTTP_TOTAL_TIMEOUT": 4}
    assert app_settings.HTTP_TOTAL_TIMEOUT == 4.0
    settings.ALIPAY = {**settings.ALIPAY, "HTTP_TOTAL_TIMEOUT": "soon"}
    with pytest.raises(AlipayConfigurationError):
        app_settings.HTTP_TOTAL_TIMEOUT  # noqa: B018
