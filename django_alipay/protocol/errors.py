"""The one error hierarchy of django_alipay, rooted at AlipayError, free of Django for the protocol layer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

__all__ = [
    "AlipayBusinessError",
    "AlipayError",
    "AlipayGatewayError",
    "AlipaySystemError",
    "AmountError",
    "CharsetError",
    "GatewayResponseError",
    "InvalidParameterError",
    "KeyFormatError",
    "NotificationError",
    "OutcomeUnknownError",
    "SignatureError",
    "TimeFormatError",
    "TransportError",
]


class AlipayError(Exception):
    """Base of every error the library raises on purpose.

    Carries what is known of the context: the mapi ``service``, the Alipay ``code``, the catalog
    ``description`` of that code, the merchant's ``out_trade_no`` and the ``raw_response`` bytes or text.
    ``retryable`` says whether repeating the same call can help. ``clock_skew`` is the gateway's clock minus
    ours when a refused call carried a timestamp and the two clocks differed by more than its validity (the
    likely cause of the refusal), else None.
    """

    retryable: bool = False
    clock_skew: timedelta | None = None

    def __init__(
        self,
        message: str = "",
        *,
        service: str | None = None,
        code: str | None = None,
        description: str | None = None,
        out_trade_no: str | None = None,
        raw_response: bytes | str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.service = service
        self.code = code
        self.description = description
        self.out_trade_no = out_trade_no
        self.raw_response = raw_response
        if retryable is not None:
            self.retryable = retryable
        if not message:
            message = self._default_message()
        self.message = message
        super().__init__(message)

    def _default_message(self) -> str:
        parts = []
        if self.code:
            parts.append(self.code)
        if self.description:
            parts.append(self.description)
        return ": ".join(parts) or self.__class__.__name__

    def context(self) -> Mapping[str, Any]:
        """The error's context as a plain dict, for logs and API error bodies (never holds a secret)."""
        return {
            "service": self.service,
            "code": self.code,
            "description": self.description,
            "out_trade_no": self.out_trade_no,
            "retryable": self.retryable,
        }

    def __str__(self) -> str:
        details = []
        if self.service:
            details.append(f"service={self.service}")
        if self.out_trade_no:
            details.append(f"out_trade_no={self.out_trade_no}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class InvalidParameterError(AlipayError, ValueError):
    """A value the library was asked to send or parse is not acceptable; ``parameter`` names it."""

    def __init__(self, message: str = "", *, parameter: str | None = None, **kwargs: Any) -> None:
        self.parameter = parameter
        super().__init__(message, **kwargs)


class AmountError(InvalidParameterError):
    """An amount is not canonical decimal text, does not fit its currency's exponent, or is out of range."""


class TimeFormatError(InvalidParameterError):
    """A time is not in its wire format, or a naive datetime was given where an aware one is needed."""


class CharsetError(InvalidParameterError):
    """A charset is not one the gateway supports, or a value cannot be encoded in the request's charset."""


class KeyFormatError(AlipayError, ValueError):
    """Key material could not be loaded; the message names what was expected and what was found."""


class SignatureError(AlipayError):
    """A signature is missing, malformed or does not verify: the data must not be trusted.

    The Django layer re-raises this as ``django_alipay.exceptions.SuspiciousSignature``, which is also a
    ``django.core.exceptions.SuspiciousOperation``.
    """


class AlipayGatewayError(AlipayError):
    """The gateway refused the request (``is_success=F``) with a gateway-level code, e.g. ``ILLEGAL_SIGN``."""


class AlipayBusinessError(AlipayError):
    """The gateway accepted the request but refused the business (e.g. ``TRADE_NOT_EXIST``)."""


class AlipaySystemError(AlipayError):
    """Alipay reported a passing internal failure (``SYSTEM_ERROR``, ``SESSION_TIMEOUT``); retrying helps."""

    retryable = True


class TransportError(AlipayError):
    """The request never reached the gateway (DNS, refused connection, TLS): safe to send again."""

    retryable = True


class OutcomeUnknownError(AlipayError):
    """The request may have been processed but the answer was lost or cannot be trusted.

    Raised for a timeout after sending, an HTTP 5xx, an HTML error page, a truncated body, or a response whose
    signature is missing or wrong. Treat it as neither success nor failure: query before doing anything else,
    and never retry a refund under a new gateway id.
    """

    retryable = True


class GatewayResponseError(OutcomeUnknownError):
    """A gateway response body could not be parsed: empty, truncated, not XML, too large, or hostile XML.

    It is an OutcomeUnknownError: the gateway may have acted on the request all the same.
    """


class NotificationError(AlipayError):
    """An inbound notification or return_url request is malformed (duplicate names, NUL bytes, wrong type).

    ``flag`` is a short machine-readable reason (``duplicate_param``, ``bad_signature`` ...) stored on the
    audit row and shown in the admin.
    """

    def __init__(self, message: str = "", *, flag: str | None = None, **kwargs: Any) -> None:
        self.flag = flag
        super().__init__(message, **kwargs)
