"""The open-point knobs: defaults from the references, allowed values only, set at run time."""

from __future__ import annotations

import pytest

from django_alipay.emulator.conf import OPEN_POINT_KNOBS, Runtime


def test_each_knob_starts_at_its_default_and_takes_only_its_values() -> None:
    state = Runtime.from_settings()
    for name, values in OPEN_POINT_KNOBS.items():
        assert state.get(name) == values[0]
        for value in values:
            state.configure(**{name.lower(): value.upper()})  # letter case does not matter
            assert state.get(name) == value
        with pytest.raises(ValueError, match=f"{name.lower()} must be one of {', '.join(values)}"):
            state.configure(**{name.lower(): "sometimes"})


def test_the_repeat_refund_answer_defaults_to_the_documented_code() -> None:
    assert OPEN_POINT_KNOBS["REPEAT_REFUND_ANSWER"][0] == "repeated_refundment_request"
    assert Runtime.from_settings().get("NOTIFY_ID_REUSE") == "fresh"
