"""Helpers for a shop's Django tests: post a notification to a merchant's notify URL with the test client."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from django_alipay.protocol import money
from django_alipay.protocol.errors import InvalidParameterError
from django_alipay.protocol.signing import SigningKey

from .builders import FieldValue, SignedForm, build_refund_notification, build_trade_notification
from .emulator import Delivery

if TYPE_CHECKING:
    from django.test import Client
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

    from django_alipay.models import Merchant, Refund, Trade

__all__ = ["notification_for", "notify_path", "post_notification"]

#: What ``post_notification`` accepts as the notification itself.
NotificationInput = Delivery | SignedForm | tuple[bytes, str] | bytes | None


def notify_path(merchant: Merchant) -> str:
    """The path ``merchant``'s notifications arrive at.

    The path of its notify URL (``ALIPAY["NOTIFY_URL_BASE"]`` + its token) when that is set, since it is what
    Alipay is told; else the app's own ``django_alipay:notify`` URL. InvalidParameterError when neither is.
    """
    from django.urls import NoReverseMatch, reverse

    url = merchant.notify_url()
    if url:
        return urlsplit(url).path or "/"
    try:
        return reverse("django_alipay:notify", kwargs={"token": merchant.notify_token})
    except NoReverseMatch:
        raise InvalidParameterError(
            'neither ALIPAY["NOTIFY_URL_BASE"] is set nor django_alipay.urls included in the URLconf, so '
            "the merchant has no notify URL to post to; pass path=",
            parameter="path",
        ) from None


def _trade(merchant: Merchant, out_trade_no: str | None) -> Trade | None:
    from django_alipay.models import Trade

    if not out_trade_no:
        return None
    return Trade.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()


def _open_refund(trade: Trade) -> Refund | None:
    from django_alipay.enums import RefundKind, RefundStatus
    from django_alipay.models import Refund

    waiting = (RefundStatus.SUBMITTED, RefundStatus.UNKNOWN, RefundStatus.REQUESTED)
    return (
        Refund.objects.filter(trade=trade, kind=RefundKind.REFUND, status__in=waiting).order_by("-pk").first()
    )


def _merchant_key(merchant: Merchant, key: SigningKey | None) -> SigningKey:
    if key is not None:
        return key
    if merchant.sign_type == "MD5":
        return merchant.signing_key()
    raise InvalidParameterError(
        f"merchant {merchant.name!r} uses {merchant.sign_type}: pass key= with the private key whose public "
        "half is its Alipay public key (e.g. alipay_emulator.alipay_signing_key(sign_type))",
        parameter="key",
    )


def notification_for(
    merchant: Merchant,
    *,
    kind: Literal["trade", "refund"] = "trade",
    key: SigningKey | None = None,
    **fields: FieldValue,
) -> SignedForm:
    """A notification for ``merchant``, signed with its sign type and charset, defaults from its records.

    ``kind="trade"``: a payment notification; ``total_fee`` and ``currency`` default to those of the
    merchant's Trade with this ``out_trade_no``. ``kind="refund"``: a refund notification for the trade's
    latest refund still waiting for its result (``out_return_no``, amount and currency from it).
    ``key`` defaults to the MD5 key for MD5 merchants; RSA/RSA2/DSA merchants need the private key of their
    "Alipay public key". Any field may be overridden, or left out with None.
    """

    common: dict[str, Any] = {
        "key": _merchant_key(merchant, key),
        "sign_type": merchant.sign_type,
        "charset": merchant.charset,
    }
    extra: dict[str, Any] = dict(fields)
    order = extra.pop("out_trade_no", None)
    if not isinstance(order, str) or not order:
        raise InvalidParameterError("a notification needs out_trade_no", parameter="out_trade_no")
    trade = _trade(merchant, order)
    if kind == "trade":
        if trade is not None:
            extra.setdefault("currency", trade.currency)
            extra.setdefault("total_fee", money.format_amount(trade.amount, trade.currency))
        return build_trade_notification(order, **common, **extra)
    if kind != "refund":
        raise InvalidParameterError("kind must be 'trade' or 'refund'", parameter="kind")
    refund = _open_refund(trade) if trade is not None else None
    gateway_id = extra.pop("out_return_no", None) or extra.pop("partner_refund_id", None)
    amount = extra.pop("return_amount", None) or extra.pop("refund_amount", None)
    if refund is not None:
        gateway_id = gateway_id or refund.gateway_refund_id
        amount = amount or money.format_amount(refund.amount, refund.currency)
        extra.setdefault("currency", refund.currency)
    if not isinstance(gateway_id, str) or not isinstance(amount, str | Decimal):
        raise InvalidParameterError(
            f"no refund of order {order!r} is waiting for a result: pass out_return_no= and return_amount=",
            parameter="out_return_no",
        )
    instore = trade is not None and not trade.is_online
    extra.setdefault("currency", trade.currency if trade is not None else "USD")
    return build_refund_notification(order, gateway_id, amount, instore=instore, **common, **extra)


def _form(notification: NotificationInput) -> tuple[bytes, str, str | None]:
    if isinstance(notification, Delivery):
        return notification.body_bytes, notification.content_type, notification.path
    if isinstance(notification, bytes):
        return notification, "application/x-www-form-urlencoded", None
    if isinstance(notification, tuple) and len(notification) == 2:
        body, content_type = notification
        return bytes(body), str(content_type), None
    raise InvalidParameterError(
        "the notification must be a Delivery, a (body, content_type) pair or bytes", parameter="notification"
    )


def post_notification(
    client: Client,
    merchant: Merchant,
    notification: NotificationInput = None,
    /,
    *,
    path: str | None = None,
    kind: Literal["trade", "refund"] = "trade",
    key: SigningKey | None = None,
    headers: Mapping[str, str] | None = None,
    **fields: FieldValue,
) -> TestResponse:
    """POST a notification to ``merchant``'s notify URL with Django's test ``client``; returns the response.

    ``notification`` may be a :class:`~django_alipay.testing.emulator.Delivery` (a send the emulator made:
    posted to the path it was sent to), a ``(body, content_type)`` pair from a builder, or raw bytes. Without
    one, it is built from ``fields`` by :func:`notification_for` (``kind``, ``key`` as there), so a test
    reads ``post_notification(client, merchant, out_trade_no="ORDER-1")``.

    The path is ``path``, else the Delivery's, else the merchant's notify URL (``ALIPAY["NOTIFY_URL_BASE"]``).
    A notification built here is not known to any gateway: with ``ALIPAY["NOTIFY_VERIFY"]`` on, the shop's
    notify_verify call says ``false`` unless the emulator sent it, so turn NOTIFY_VERIFY off for such tests.
    """
    if notification is None:
        body, content_type, sent_to = (*notification_for(merchant, kind=kind, key=key, **fields), None)
    else:
        if fields:
            raise InvalidParameterError(
                "give either a ready notification or fields to build one, not both", parameter="fields"
            )
        body, content_type, sent_to = _form(notification)
    target = path or sent_to or notify_path(merchant)
    return client.generic("POST", target, body, content_type=content_type, headers=dict(headers or {}))
