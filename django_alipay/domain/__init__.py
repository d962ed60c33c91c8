"""The domain layer: the only code that changes Trade, Refund and Notification state.

Import the modules, not their functions, so each call reads as what it does::

    from django_alipay.domain import refunds, trades

    refund = refunds.request_refund(trade, Decimal("10.00"), reason="damaged")
"""
