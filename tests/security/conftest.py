"""Fixtures of the attack list: the web tests' fake gateway, merchant, trades and staff users."""

from __future__ import annotations

from tests.web.conftest import gateway, make_staff, make_trade, merchant

__all__ = ["gateway", "make_staff", "make_trade", "merchant"]
