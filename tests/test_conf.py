"""The ALIPAY settings dict: defaults, lazy reading, resets on change, unknown keys."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from django_alipay.checks import check_settings
from django_alipay.conf import DEFAULTS, app_settings


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
