"""The error hierarchy shop code relies on: one root, Django's security and configuration bases where due."""

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation

from django_alipay import exceptions
from django_alipay.protocol import errors


def test_every_exported_error_but_configuration_is_an_alipay_error():
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if name == "AlipayConfigurationError":
            assert issubclass(cls, ImproperlyConfigured)
            assert not issubclass(cls, errors.AlipayError)
        else:
            assert issubclass(cls, errors.AlipayError), name


def test_signature_failures_are_suspicious_operations_in_the_django_layer():
    assert issubclass(exceptions.SuspiciousSignature, SuspiciousOperation)
    assert issubclass(exceptions.SuspiciousSignature, errors.SignatureError)


def test_outcome_unknown_and_transport_errors_say_they_are_retryable():
    assert errors.OutcomeUnknownError().retryable is True
    assert errors.GatewayResponseError().retryable is True
    assert errors.TransportError().retryable is True
    assert errors.AlipayGatewayError(code="ILLEGAL_SIGN").retryable is False


def test_errors_carry_their_context_and_say_it():
    error = errors.AlipayBusinessError(
        service="forex_refund", code="RETURN_AMOUNT_EXCEED", description="too much", out_trade_no="T1"
    )
    assert str(error) == "RETURN_AMOUNT_EXCEED: too much (service=forex_refund, out_trade_no=T1)"
    assert error.context()["code"] == "RETURN_AMOUNT_EXCEED"


def test_notification_errors_carry_a_machine_readable_flag():
    assert errors.NotificationError("dup", flag="duplicate_param").flag == "duplicate_param"
