"""Test kit for shops using django_alipay: emulator fixtures, signed-payload builders, clock and faults.

The pytest plugin (:mod:`django_alipay.testing.plugin`) provides the fixtures ``alipay_emulator``,
``alipay_emulator_session``, ``alipay_clock`` and ``alipay_faults``. The helpers below work with any test
runner; only :func:`post_notification` and :meth:`EmulatorProcess.merchant` need Django. See docs/testing.md.
"""

from __future__ import annotations

from . import faults
from .builders import (
    SignedForm,
    build_refund_notification,
    build_response,
    build_return_query,
    build_trade_notification,
    new_notify_id,
    new_trade_no,
    sign_form,
    sign_params,
)
from .clock import BeijingClock, standing_at
from .emulator import Delivery, EmulatorProcess, Payment
from .gateway import mock_gateway
from .shop import notification_for, post_notification

__all__ = [
    "BeijingClock",
    "Delivery",
    "EmulatorProcess",
    "Payment",
    "SignedForm",
    "build_refund_notification",
    "build_response",
    "build_return_query",
    "build_trade_notification",
    "faults",
    "mock_gateway",
    "new_notify_id",
    "new_trade_no",
    "notification_for",
    "post_notification",
    "sign_form",
    "sign_params",
    "standing_at",
]
