"""The client and the notification reader against the gateway emulator, over real HTTP in a subprocess."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from django_alipay.protocol import keys
from django_alipay.protocol.client import GatewayClient, PageRequest
from django_alipay.protocol.clock import BEIJING, FixedClock
from django_alipay.protocol.codes import ResultCode, TradeStatus
from django_alipay.protocol.errors import (
    AlipayBusinessError,
    AlipayGatewayError,
    AlipaySystemError,
    GatewayResponseError,
    OutcomeUnknownError,
)
from django_alipay.protocol.notifications import VerifiedNotification, read_notification
from tests.client.stub import dead_url
from tests.conftest import CONTROL_HEADERS
from tests.standalone import EmulatorDidNotStart, StandaloneEmulator

PARTNER = "2088101122136241"
MD5_KEY = "k2n4fq8w0e3r5t7y9u1i3o5p7a9s1d3f"


class Emulator:
    """``python -m django_alipay.emulator`` on a free port, with helpers for its control API."""

    def __init__(self, *args: str) -> None:
        self.launched = StandaloneEmulator("--partner", PARTNER, "--md5-key", MD5_KEY, *args)
        try:
            self.launched.start()
        except EmulatorDidNotStart as exc:
            pytest.fail(str(exc))
        self.url = self.launched.gateway
        self.base = self.launched.base
        self.fingerprints = self.launched.next_line().strip()

    def stderr(self) -> str:
        return self.launched.stderr()

    def stop(self) -> None:
        self.launched.stop()

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(
            method, self.base + "control/" + path, headers=CONTROL_HEADERS, timeout=10, **kwargs
        )
        assert response.status_code == 200, response.text
        return response.json()

    def pay(self, partner: str = PARTNER, **trade: str) -> Any:
        return self.control("POST", "pay", data={"partner": partner, **trade})

    def keys(self) -> dict[str, Any]:
        return self.control("GET", "keys")["keys"]

    def buyer(self, note_word: str) -> str:
        """The barcode of the seeded buyer whose note mentions ``note_word``."""
        for buyer in self.control("GET", "buyers")["buyers"]:
            if note_word in buyer["note"]:
                return buyer["barcode"]
        raise AssertionError(f"no seeded buyer mentions {note_word!r}")

    def register(self, partner: str, sign_type: str) -> Any:
        """A new partner signing with a fresh key of ``sign_type``; returns the merchant private key."""
        private = keys.generate_private_key(sign_type)
        self.control(
            "POST",
            "partners",
            data={
                "partner": partner,
                "merchant_public_key": keys.public_key_pem(private),
                "sign_types": sign_type,
            },
        )
        return private

    def client(self, **overrides: Any) -> GatewayClient:
        options: dict[str, Any] = {
            "partner": PARTNER,
            "sign_type": "MD5",
            "key": MD5_KEY,
            "gateway_url": self.url,
            "timeout": (5.0, 10.0),
            "deadline": 20.0,
            "sleep": lambda seconds: None,
        }
        options.update(overrides)
        return GatewayClient(**options)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator("--refund-interval", "0")
    yield emulator
    emulator.stop()


@pytest.fixture
def restored_emu(emu: Emulator) -> Iterator[Emulator]:
    """The module's emulator for a test that injects faults or moves its clock: both are put back after the
    test, passed or failed, instead of starting an emulator for each such test (1-2 s each)."""
    yield emu
    emu.control("POST", "faults", json={})
    emu.control("POST", "clock", data={"now": "real"})


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def open_cashier(page: PageRequest) -> None:
    """What the buyer's browser does with the signed redirect: the cashier must accept it."""
    response = requests.get(page.url, timeout=10)
    assert response.status_code == 200
    assert "ILLEGAL_" not in response.text


class NotifyReceiver:
    """A merchant notify endpoint: verifies the signature and calls notify_verify before answering success."""

    def __init__(self, client: GatewayClient, verify_key: Any, sign_type: str) -> None:
        self.received: queue.Queue[tuple[VerifiedNotification, bool]] = queue.Queue()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    notification = read_notification(
                        body,
                        content_type=self.headers.get("Content-Type"),
                        key=verify_key,
                        allowed_sign_types=(sign_type,),
                        default_charset=client.charset,
                    )
                    genuine = client.notify_verify(notification.notify_id or "")
                    receiver.received.put((notification, genuine))
                    answer = b"success"
                except Exception as exc:  # recorded for the test to report
                    receiver.errors.put(exc)
                    answer = b"fail"
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def next(self, timeout: float = 15.0) -> tuple[VerifiedNotification, bool]:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            errors = []
            while not self.errors.empty():
                errors.append(repr(self.errors.get()))
            raise AssertionError(f"no verified notification arrived; errors: {errors}") from None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_for() -> Iterator[Any]:
    made: list[NotifyReceiver] = []

    def make(client: GatewayClient, verify_key: Any, sign_type: str = "MD5") -> NotifyReceiver:
        receiver = NotifyReceiver(client, verify_key, sign_type)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


# --- online payments (create_forex_trade, single_trade_query, forex_refund) -------------------------------


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_online_payment_query_and_refunds(emu, charset):
    client = emu.client(charset=charset)
    trade = uid("W")
    page = client.create_forex_trade(
        out_trade_no=trade, subject="测试商品", currency="USD", total_fee=Decimal("10.00")
    )
    open_cashier(page)
    waiting = client.single_trade_query(out_trade_no=trade)
    assert waiting.trade_status is TradeStatus.WAIT_BUYER_PAY
    assert waiting.subject == "测试商品"
    assert waiting.sign_verified is True

    emu.pay(out_trade_no=trade)
    paid = client.single_trade_query(out_trade_no=trade)
    assert paid.trade_status is TradeStatus.TRADE_FINISHED
    assert paid.total_fee == Decimal("10.00")
    assert paid.gmt_payment.tzinfo is not None
    assert client.single_trade_query(trade_no=paid.trade_no).out_trade_no == trade

    refund = uid("R")
    refund_args = {"out_trade_no": trade, "currency": "USD", "reason": "退款原因"}
    assert client.forex_refund(out_return_no=refund, return_amount=Decimal("4.00"), **refund_args).accepted
    with pytest.raises(AlipayBusinessError) as exceeded:
        client.forex_refund(out_return_no=uid("R"), return_amount=Decimal("6.01"), **refund_args)
    assert exceeded.value.code == "RETURN_AMOUNT_EXCEED"
    with pytest.raises(AlipayBusinessError) as reused:
        client.forex_refund(out_return_no=refund, return_amount=Decimal("1.00"), **refund_args)
    assert reused.value.code == "REPEATED_REFUNDMENT_REQUEST"
    with pytest.raises(AlipayBusinessError) as currency:
        client.forex_refund(
            out_return_no=uid("R"), return_amount=Decimal("1.00"), **{**refund_args, "currency": "EUR"}
        )
    assert currency.value.code == "CURRENCY_NOT_SAME"
    assert client.forex_refund(out_return_no=uid("R"), return_amount=Decimal("6.00"), **refund_args).accepted


def test_online_errors(emu):
    client = emu.client()
    with pytest.raises(AlipayBusinessError) as missing:
        client.single_trade_query(out_trade_no=uid("NOPE"))
    assert missing.value.code == "TRADE_NOT_EXIST"
    with pytest.raises(AlipayBusinessError) as unknown:
        client.forex_refund(
            out_return_no=uid("R"), out_trade_no=uid("NOPE"), return_amount=Decimal("1.00"), currency="USD"
        )
    assert unknown.value.code == "PURCHASE_TRADE_NOT_EXIST"


def test_wap_payment_and_post_form(emu):
    client = emu.client()
    trade = uid("M")
    page = client.create_forex_trade_wap(
        out_trade_no=trade, subject="mobile", currency="USD", total_fee=Decimal("3.00"), timeout_rule="7d"
    )
    # The auto-submitting form's POST reaches the same cashier as the redirect.
    posted = requests.post(
        page.action,
        params={"_input_charset": page.charset},
        data={k: v for k, v in page.params.items() if k != "_input_charset"},
        timeout=10,
    )
    assert posted.status_code == 200
    assert "ILLEGAL_" not in posted.text
    assert f'value="{page.params["sign"]}"' in page.form_html()
    emu.pay(out_trade_no=trade)
    assert client.single_trade_query(out_trade_no=trade).trade_status is TradeStatus.TRADE_FINISHED


def test_jpy_amounts_have_no_decimals(emu):
    client = emu.client()
    trade = uid("J")
    open_cashier(
        client.create_forex_trade(
            out_trade_no=trade, subject="yen", currency="JPY", total_fee=Decimal("1500")
        )
    )
    emu.pay(out_trade_no=trade)
    assert client.single_trade_query(out_trade_no=trade).total_fee == Decimal("1500")
    assert client.forex_refund(
        out_return_no=uid("R"), out_trade_no=trade, return_amount=Decimal("500"), currency="JPY"
    ).accepted


# --- in-store (spot.pay, overseas.query, spot.refund, spot.reverse, cancel, precreate) --------------------


def spot_pay(client: GatewayClient, barcode: str, trans_id: str, amount: str = "5.00", **extra: Any) -> Any:
    return client.spot_pay(
        partner_trans_id=trans_id,
        trans_name=extra.pop("trans_name", "coffee"),
        currency="USD",
        trans_amount=Decimal(amount),
        buyer_identity_code=barcode,
        **extra,
    )


def test_spot_pay_query_refund_and_its_errors(emu):
    client = emu.client()
    barcode = emu.buyer("default buyer")
    trans = uid("S")
    paid = spot_pay(client, barcode, trans)
    assert paid.result_code is ResultCode.SUCCESS
    assert paid.trans_amount == Decimal("5.00")
    assert isinstance(paid.trans_amount_cny, Decimal)
    assert paid.alipay_pay_time.utcoffset() == timedelta(hours=8)
    assert paid.sign_verified is True
    # Repeating the same payment is idempotent; another buyer's code under the same id is refused.
    assert spot_pay(client, barcode, trans).alipay_trans_id == paid.alipay_trans_id
    with pytest.raises(AlipayBusinessError) as mismatch:
        spot_pay(client, emu.buyer("16-digit"), trans)
    assert mismatch.value.code == "TRADE_BUYER_NOT_MATCH"

    queried = client.overseas_query(partner_trans_id=trans)
    assert queried.alipay_trans_status is TradeStatus.TRADE_SUCCESS
    assert client.overseas_query(alipay_trans_id=paid.alipay_trans_id).partner_trans_id == trans

    refund = client.spot_refund(
        partner_trans_id=trans,
        partner_refund_id=uid("SR"),
        refund_amount=Decimal("2.00"),
        currency="USD",
        is_sync=True,
    )
    assert refund.result_code is ResultCode.SUCCESS
    assert refund.refund_amount == Decimal("2.00")
    with pytest.raises(AlipayBusinessError) as exceeded:
        client.spot_refund(
            partner_trans_id=trans, partner_refund_id=uid("SR"), refund_amount=Decimal("3.01"), currency="USD"
        )
    assert exceeded.value.code in ("REQUEST_AMOUNT_EXCEED", "RETURN_AMOUNT_EXCEED", "REFUND_AMT_RESTRICTION")
    with pytest.raises(AlipayBusinessError) as unknown:
        client.spot_refund(
            partner_trans_id=uid("NOPE"),
            partner_refund_id=uid("SR"),
            refund_amount=Decimal("1.00"),
            currency="USD",
        )
    assert unknown.value.code == "TRADE_NOT_EXIST"
    with pytest.raises(AlipayBusinessError) as missing:
        client.overseas_query(partner_trans_id=uid("NOPE"))
    assert missing.value.code == "TRANS_NOT_FOUND"


def test_spot_pay_refused_buyer(emu):
    with pytest.raises(AlipayBusinessError) as refused:
        spot_pay(emu.client(), emu.buyer("restricted"), uid("S"))
    assert refused.value.code == "BUYER_ENABLE_STATUS_FORBID"


def test_spot_pay_waiting_for_the_buyer_is_outcome_unknown_until_paid(emu):
    client = emu.client()
    trans = uid("S")
    with pytest.raises(OutcomeUnknownError):
        spot_pay(client, emu.buyer("confirmation"), trans)
    assert client.overseas_query(partner_trans_id=trans).alipay_trans_status is TradeStatus.WAIT_BUYER_PAY
    emu.pay(partner_trans_id=trans)
    assert client.overseas_query(partner_trans_id=trans).alipay_trans_status is TradeStatus.TRADE_SUCCESS


def test_reverse_today_then_refund_is_refused(emu):
    client = emu.client()
    trans = uid("S")
    spot_pay(client, emu.buyer("default buyer"), trans)
    reversed_ = client.spot_reverse(partner_trans_id=trans)
    assert reversed_.result_code is ResultCode.SUCCESS
    assert reversed_.alipay_reverse_time.tzinfo is not None
    assert client.overseas_query(partner_trans_id=trans).alipay_trans_status is TradeStatus.TRADE_CLOSED
    with pytest.raises(AlipayBusinessError) as closed:
        client.spot_refund(
            partner_trans_id=trans, partner_refund_id=uid("SR"), refund_amount=Decimal("1.00"), currency="USD"
        )
    assert closed.value.code == "TRADE_HAS_CLOSE"
    with pytest.raises(AlipayBusinessError) as unknown:
        client.spot_reverse(partner_trans_id=uid("NOPE"))
    assert unknown.value.code == "TRADE_NOT_EXIST"


def test_precreate_pay_and_cancel(emu):
    client = emu.client()
    unpaid = uid("Q")
    qr = client.precreate(out_trade_no=unpaid, subject="二维码", total_fee=Decimal("2.00"), currency="USD")
    assert qr.result_code is ResultCode.SUCCESS
    assert qr.qr_code
    closed = client.cancel(out_trade_no=unpaid)
    assert closed.result_code is ResultCode.SUCCESS
    assert closed.action == "close"

    paid = uid("Q")
    client.precreate(out_trade_no=paid, subject="x", total_fee=Decimal("2.00"), currency="USD")
    emu.pay(out_trade_no=paid)
    assert client.overseas_query(partner_trans_id=paid).alipay_trans_status is TradeStatus.TRADE_SUCCESS
    refunded = client.cancel(out_trade_no=paid)
    assert refunded.action == "refund"
    with pytest.raises(AlipayBusinessError) as reused:
        client.precreate(out_trade_no=paid, subject="x", total_fee=Decimal("2.00"), currency="USD")
    assert reused.value.code in ("TRADE_HAS_CLOSE", "TRADE_HAS_SUCCESS")
    with pytest.raises(AlipayBusinessError) as unknown:
        client.cancel(out_trade_no=uid("NOPE"))
    assert unknown.value.code == "TRADE_NOT_EXIST"


# --- notifications, end to end ----------------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_payment_and_refund_notifications_verify(emu, receiver_for, charset):
    client = emu.client(charset=charset)
    receiver = receiver_for(client, MD5_KEY)
    trade = uid("N")
    open_cashier(
        client.create_forex_trade(
            out_trade_no=trade,
            subject="通知",
            currency="USD",
            total_fee=Decimal("8.00"),
            notify_url=receiver.url,
        )
    )
    emu.pay(out_trade_no=trade)
    paid, genuine = receiver.next()
    assert genuine is True
    assert paid.out_trade_no == trade
    assert paid.trade_status is TradeStatus.TRADE_FINISHED
    assert paid.total_fee == Decimal("8.00")
    assert paid.notify_time.tzinfo is not None

    refund = uid("R")
    client.forex_refund(
        out_return_no=refund,
        out_trade_no=trade,
        return_amount=Decimal("1.00"),
        currency="USD",
        notify_url=receiver.url,
    )
    refunded, genuine = receiver.next()
    assert genuine is True
    assert refunded.is_refund
    assert refunded.params["out_return_no"] == refund
    assert refunded.refund_status == "REFUND_SUCCESS"


def test_notify_verify_of_an_unknown_id_is_false(emu):
    assert emu.client().notify_verify(uid("n")[:30]) is False


# --- RSA, RSA2, DSA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sign_type", "partner"),
    [("RSA", "2088101122130001"), ("RSA2", "2088101122130002"), ("DSA", "2088101122130003")],
)
def test_public_key_sign_types(emu, receiver_for, sign_type, partner):
    private = emu.register(partner, sign_type)
    alipay_key = emu.keys()[sign_type]["public_key_pem"]
    client = emu.client(partner=partner, sign_type=sign_type, key=private, alipay_public_key=alipay_key)
    trans = uid("S")
    assert spot_pay(client, emu.buyer("default buyer"), trans).sign_verified is True
    assert client.overseas_query(partner_trans_id=trans).sign_verified is True
    with pytest.raises(AlipayBusinessError):
        client.single_trade_query(out_trade_no=uid("NOPE"))

    receiver = receiver_for(client, alipay_key, sign_type)
    trade = uid("N")
    open_cashier(
        client.create_forex_trade(
            out_trade_no=trade,
            subject="rsa",
            currency="USD",
            total_fee=Decimal("1.00"),
            notify_url=receiver.url,
        )
    )
    emu.pay(partner=partner, out_trade_no=trade)
    notification, genuine = receiver.next()
    assert genuine is True
    assert notification.sign_type == sign_type

    wrong_merchant = emu.client(
        partner=partner,
        sign_type=sign_type,
        key=keys.generate_private_key(sign_type),
        alipay_public_key=alipay_key,
    )
    with pytest.raises(AlipayGatewayError) as bad_sign:
        wrong_merchant.overseas_query(partner_trans_id=trans)
    assert bad_sign.value.code == "ILLEGAL_SIGN"
    impostor = keys.public_key_pem(keys.generate_private_key(sign_type))
    distrustful = emu.client(partner=partner, sign_type=sign_type, key=private, alipay_public_key=impostor)
    with pytest.raises(OutcomeUnknownError):
        distrustful.overseas_query(partner_trans_id=trans)
    with pytest.raises(AlipayGatewayError) as downgrade:
        emu.client(partner=partner).overseas_query(partner_trans_id=trans)
    assert downgrade.value.code == "ILLEGAL_SIGN_TYPE"


def test_gateway_refusals(emu):
    with pytest.raises(AlipayGatewayError) as partner:
        emu.client(partner="2088000000000009").overseas_query(partner_trans_id="x")
    assert partner.value.code == "ILLEGAL_PARTNER"
    with pytest.raises(AlipayGatewayError) as sign:
        emu.client(key="0" * 32).overseas_query(partner_trans_id="x")
    assert sign.value.code == "ILLEGAL_SIGN"


# --- files ------------------------------------------------------------------------------------------------


def test_rate_file(emu):
    rates = {record.currency: record for record in emu.client().forex_rate_file()}
    assert rates["USD"].rate > 0
    assert rates["USD"].valid_from.tzinfo is not None


def test_transaction_and_settlement_files(restored_emu):
    client = restored_emu.client()
    trans = uid("F")
    spot_pay(client, restored_emu.buyer("default buyer"), trans, amount="7.00")
    today = datetime.now(BEIJING).date()
    later = datetime.now(UTC) + timedelta(days=3)
    restored_emu.control("POST", "clock", data={"now": later.isoformat()})
    ahead = restored_emu.client(clock=FixedClock(later))
    transactions = ahead.forex_compare_file(
        start_date=today - timedelta(days=1), end_date=today + timedelta(days=1)
    )
    mine = [r for r in transactions if r.partner_transaction_id == trans]
    assert len(mine) == 1
    assert mine[0].amount == Decimal("7.00")
    assert mine[0].currency == "USD"
    settlements = ahead.forex_liquidation_file(
        start_date=today - timedelta(days=1), end_date=today + timedelta(days=1)
    )
    assert all(record.currency for record in settlements)
    empty = ahead.forex_compare_file(start_date=date(2020, 1, 1), end_date=date(2020, 1, 5))
    assert empty.no_data is True


def test_file_refusal_when_our_clock_is_ahead(emu):
    today = datetime.now(BEIJING).date()
    ahead = emu.client(clock=FixedClock(datetime.now(UTC) + timedelta(days=3)))
    with pytest.raises(AlipayBusinessError) as refused:
        ahead.forex_compare_file(start_date=today, end_date=today + timedelta(days=1))
    assert "today" in refused.value.message


# --- failover and faults ----------------------------------------------------------------------------------


def test_failover_from_a_dead_url_to_the_emulator(emu):
    client = emu.client(gateway_url=[dead_url(), emu.url])
    trans = uid("S")
    spot_pay(client, emu.buyer("default buyer"), trans)
    assert client.overseas_query(partner_trans_id=trans).partner_trans_id == trans


@pytest.mark.parametrize(
    ("plan", "error_type"),
    [
        ({"http_502_rate": 1.0}, OutcomeUnknownError),
        ({"drop_rate": 1.0}, OutcomeUnknownError),
        ({"truncate_rate": 1.0}, GatewayResponseError),
        ({"unsigned_rate": 1.0}, OutcomeUnknownError),
        ({"system_error_rate": 1.0}, AlipaySystemError),
        ({"latency": 4.0}, OutcomeUnknownError),
    ],
)
def test_injected_faults_on_a_query(restored_emu, plan, error_type):
    client = restored_emu.client(timeout=(2.0, 1.0), deadline=3.0, retries=1)
    trans = uid("S")
    spot_pay(client, restored_emu.buyer("default buyer"), trans)
    restored_emu.control("POST", "faults", json={"services": {"alipay.acquire.overseas.query": plan}})
    with pytest.raises(error_type):
        client.overseas_query(partner_trans_id=trans)
    restored_emu.control("POST", "faults", json={})
    assert client.overseas_query(partner_trans_id=trans).partner_trans_id == trans


def test_injected_fault_on_a_refund_is_never_resent(restored_emu):
    client = restored_emu.client(retries=3)
    trans = uid("S")
    spot_pay(client, restored_emu.buyer("default buyer"), trans)
    restored_emu.control(
        "POST", "faults", json={"services": {"alipay.acquire.overseas.spot.refund": {"drop_rate": 1.0}}}
    )
    refund_id = uid("SR")
    with pytest.raises(OutcomeUnknownError):
        client.spot_refund(
            partner_trans_id=trans, partner_refund_id=refund_id, refund_amount=Decimal("1.00"), currency="USD"
        )
    restored_emu.control("POST", "faults", json={})
    # Whether the dropped refund was carried out is for a query to say; here: it was sent once, so at most
    # one refund of 1.00 can exist, and a repeat under the same id does not refund twice.
    repeat = client.spot_refund(
        partner_trans_id=trans, partner_refund_id=refund_id, refund_amount=Decimal("1.00"), currency="USD"
    )
    assert repeat.result_code is ResultCode.SUCCESS
    with pytest.raises(AlipayBusinessError):
        client.spot_refund(
            partner_trans_id=trans, partner_refund_id=uid("SR"), refund_amount=Decimal("4.01"), currency="USD"
        )


def test_clock_skew_expires_the_timestamp(restored_emu):
    restored_emu.control("POST", "clock", data={"now": (datetime.now(UTC) + timedelta(hours=2)).isoformat()})
    client = restored_emu.client()
    with pytest.raises(AlipayGatewayError) as expired:
        client.cancel(out_trade_no=uid("C"))
    assert expired.value.code == "ILLEGAL_ARGUMENT"
    # The gateway's Date header follows its clock, so the refusal names its likely cause.
    skew = expired.value.clock_skew
    assert skew is not None
    assert timedelta(minutes=110) < skew < timedelta(minutes=130)
    assert "fix this server's clock" in expired.value.message
    with pytest.raises(AlipayGatewayError):
        client.precreate(out_trade_no=uid("Q"), subject="x", total_fee=Decimal("1.00"), currency="USD")
    # With our clock set like the gateway's, the same call goes through.
    synced = restored_emu.client(clock=FixedClock(datetime.now(UTC) + timedelta(hours=2)))
    assert synced.precreate(
        out_trade_no=uid("Q"), subject="x", total_fee=Decimal("1.00"), currency="USD"
    ).qr_code
