"""The pytest plugin in a fresh pytest run (pytester): it loads, its fixtures work, it stays out of the way.

The runs pass ``-p django_alipay.testing.plugin`` explicitly, which works both before and after the
``pytest11`` entry point is registered (when the entry point is named after the module).
"""

from __future__ import annotations

import re
import textwrap

import pytest

from .fresh_run import SHOP_SETTINGS, SHOP_URLS

PLUGIN = ("-p", "django_alipay.testing.plugin")

pytestmark = pytest.mark.slow


def test_the_plugin_lists_its_fixtures_and_marks(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:django", "--fixtures")
    marks = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:django", "--markers")

    assert result.ret == 0
    for fixture in (
        "alipay_emulator",
        "alipay_emulator_session [session scope]",
        "alipay_clock",
        "alipay_faults",
    ):
        result.stdout.re_match_lines([re.escape(fixture) + r" -- \S*django_alipay/testing/plugin\.py:\d+$"])
    marks.stdout.fnmatch_lines(
        ["@pytest.mark.alipay_emulator(**options)*", "@pytest.mark.alipay_clock(when)*"]
    )


def test_a_project_without_django_is_not_affected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain=textwrap.dedent(
            """
            import sys

            import pytest

            from django_alipay.domain import clock
            from django_alipay.testing import build_trade_notification


            def test_nothing_of_django_was_imported():
                assert not [name for name in sys.modules if name == "django" or name.startswith("django.")]


            @pytest.mark.alipay_clock("2024-03-01 23:59:59")
            def test_clock_and_builders_work_without_django(alipay_clock):
                form = build_trade_notification("A-1", key="k" * 32)
                assert form.params["notify_time"] == "2024-03-01 23:59:59"
                assert clock.get_clock() is alipay_clock


            def test_the_clock_was_put_back():
                assert type(clock.get_clock()).__name__ == "SystemClock"
            """
        )
    )

    result = pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:django", "-p", "no:cacheprovider", "--strict-markers"
    )

    result.assert_outcomes(passed=3)


def test_emulator_fixtures_in_a_fresh_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gateway=textwrap.dedent(
            """
            import pytest
            import requests

            from django_alipay.protocol import envelope
            from django_alipay.testing import faults, sign_form

            BARCODE = "286123456789012345"


            def spot_pay(emulator, order):
                params = {
                    "service": "alipay.acquire.overseas.spot.pay", "partner": emulator.partner,
                    "_input_charset": "utf-8", "alipay_seller_id": emulator.partner, "quantity": "1",
                    "trans_name": "Lunch", "partner_trans_id": order, "currency": "USD",
                    "trans_amount": "5.00", "buyer_identity_code": BARCODE, "identity_code_type": "barcode",
                    "trans_create_time": "20240301120000", "biz_product": "OVERSEAS_MBARCODE_PAY",
                }
                form = sign_form(params, key=emulator.alipay_signing_key("MD5"))
                answer = requests.post(emulator.gateway_url, data=form.body,
                                       headers={"Content-Type": form.content_type}, timeout=10)
                return envelope.parse_response(answer.content, key=emulator.md5_key)


            @pytest.mark.alipay_emulator(merchant_key="DSA", refund_interval=5)
            def test_marks_configure_the_emulator(alipay_emulator):
                [partner] = alipay_emulator.control("partners")["partners"]
                assert partner["sign_types"] == ["MD5", "DSA"]
                assert partner["refund_interval"] == 5
                published = alipay_emulator.control("keys")["keys"]["DSA"]["public_key_pem"]
                assert published == alipay_emulator.alipay_public_key


            def test_a_signed_call_and_an_injected_fault(alipay_emulator, alipay_faults):
                assert spot_pay(alipay_emulator, "P-1").fields["result_code"] == "SUCCESS"
                alipay_faults.inject(faults.system_error("alipay.acquire.overseas.spot.pay", limit=1))
                assert spot_pay(alipay_emulator, "P-2").error == "SYSTEM_ERROR"
                assert spot_pay(alipay_emulator, "P-2").fields["result_code"] == "SUCCESS"


            def test_session_faults_are_injected(alipay_emulator_session, alipay_faults):
                alipay_faults.inject(faults.drop())
                assert alipay_emulator_session.faults()["global"]["drop_rate"] == 1.0


            def test_and_cleared_after_the_test(alipay_emulator_session):
                assert alipay_emulator_session.faults()["global"] is None
            """
        )
    )

    result = pytester.runpytest_subprocess(
        *PLUGIN, "-p", "no:django", "-p", "no:cacheprovider", "--strict-markers"
    )

    result.assert_outcomes(passed=4)


SHOP_TESTS = """
from decimal import Decimal

import pytest

from django_alipay.domain import refunds, trades
from django_alipay.testing import post_notification

pytestmark = pytest.mark.django_db(transaction=True)


def test_pay_notify_refund(alipay_emulator, client):
    merchant = alipay_emulator.merchant(sign_type="RSA2")
    start = trades.create_trade(merchant, out_trade_no="ORDER-1", amount="25.00", subject="Mug")
    alipay_emulator.pay(url=start.url)
    [delivery] = alipay_emulator.notifications("ORDER-1")
    assert post_notification(client, merchant, delivery).content == b"success"
    start.trade.refresh_from_db()
    assert start.trade.status == "TRADE_FINISHED"
    assert refunds.request_refund(start.trade, Decimal("5.00")).status == "succeeded"
"""


def test_a_django_shop_suite_in_a_fresh_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop_settings=SHOP_SETTINGS, shop_urls=SHOP_URLS, test_shop=SHOP_TESTS)

    result = pytester.runpytest_subprocess(*PLUGIN, "--ds", "shop_settings", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
