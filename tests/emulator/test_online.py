"""Online payments: create_forex_trade(_wap), the cashier over HTTP, return_url, notifications, queries."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests

from tests.conftest import CONTROL_HEADERS

from .conftest import BUYER, EmulatorProcess, Merchant, Receiver, new_id
from .signer import verify

QUERY = "single_trade_query"
TRADE_NO = re.compile(r"[0-9]{8}2200[0-9]{16}")


class Browser:
    """A buyer's browser at the emulator's cashier."""

    def __init__(self, emu: EmulatorProcess, location: str) -> None:
        self.session = requests.Session()
        self.url = urljoin(emu.base + "/", location)
        self.page = self.session.get(self.url, timeout=30)
        assert self.page.status_code == 200

    def _token(self, name: str) -> str:
        match = re.search(rf'name="{name}" value="([^"]+)"', self.page.text)
        assert match, self.page.text
        return match.group(1)

    def post(self, action: str, **fields: str) -> requests.Response:
        fields["csrfmiddlewaretoken"] = self._token("csrfmiddlewaretoken")
        response = self.session.post(self.url + action, data=fields, allow_redirects=False, timeout=30)
        if response.status_code == 200:
            self.page = response
        return response

    def login(self, login_id: str = BUYER, password: str = "111111") -> requests.Response:
        return self.post("login", login_id=login_id, password=password)

    def pay(self) -> requests.Response:
        return self.post("pay", buyer_token=self._token("buyer_token"))


def test_cashier_flow_over_http_ends_at_a_signed_return_url_and_a_notification(
    emu: EmulatorProcess, rsa_key, receiver: Receiver
) -> None:
    merchant = emu.merchant(private_key=rsa_key)
    receiver.answer("/notify", "success")
    out_trade_no = new_id()
    params = {
        "out_trade_no": out_trade_no,
        "subject": "Tea set",
        "currency": "USD",
        "total_fee": "12.50",
        "product_code": "NEW_OVERSEAS_SELLER",
        "notify_url": receiver.url("/notify"),
        "return_url": "https://shop.example/return",
    }
    response = merchant.request("create_forex_trade", params, sign_type="RSA2")
    assert response.status_code == 302
    browser = Browser(emu, response.headers["Location"])
    assert "12.50 USD" in browser.page.text
    assert 'id="trade-status">WAIT_BUYER_PAY<' in browser.page.text

    assert browser.login(password="wrong").status_code == 200
    assert "Wrong account name or password" in browser.page.text
    assert browser.login().status_code == 200
    assert 'id="pay"' in browser.page.text
    paid = browser.pay()
    assert paid.status_code == 302
    location = urlsplit(paid.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "shop.example", "/return")
    back = dict(parse_qsl(location.query))
    assert back["out_trade_no"] == out_trade_no
    assert back["trade_status"] == "TRADE_FINISHED"
    assert back["total_fee"] == "12.50"
    assert back["currency"] == "USD"
    assert TRADE_NO.fullmatch(back["trade_no"])
    assert back["sign_type"] == "RSA2"
    assert verify(back, "RSA2", emu.alipay_public_key("RSA2"))

    (notification,) = receiver.wait("/notify", 1)
    fields = notification.params
    assert {
        k: fields[k]
        for k in ("notify_type", "out_trade_no", "trade_no", "trade_status", "total_fee", "currency")
    } == {
        "notify_type": "trade_status_sync",
        "out_trade_no": out_trade_no,
        "trade_no": back["trade_no"],
        "trade_status": "TRADE_FINISHED",
        "total_fee": "12.50",
        "currency": "USD",
    }
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", fields["notify_time"])
    assert len(fields["notify_id"]) == 34
    assert verify(fields, "RSA2", emu.alipay_public_key("RSA2"))
    # Form encoding: the space of notify_time travels as '+', so a '+' of the Base64 signature must be %2B.
    raw = notification.body.decode("ascii")
    assert "notify_time=" + fields["notify_time"].replace(" ", "+").replace(":", "%3A") in raw
    raw_sign = next(part for part in raw.split("&") if part.startswith("sign="))
    assert "+" not in raw_sign
    assert notification.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"

    query = merchant.ok(QUERY, {"out_trade_no": out_trade_no}, sign_type="RSA2")
    assert query["trade_status"] == "TRADE_FINISHED"
    assert query["buyer_email"] == "buy***@alitest.com"
    assert re.fullmatch(r"2088[0-9]{12}", query["buyer_id"])


def test_insufficient_balance_at_the_cashier_leaves_the_trade_unpaid(merchant: Merchant) -> None:
    out_trade_no, location = merchant.online_trade("1000.00")
    browser = Browser(merchant.emu, location)
    browser.login("poor@alitest.com")
    response = browser.pay()
    assert response.status_code == 200
    assert "BUYER_ENABLE_STATUS_FORBID" in response.text
    assert merchant.ok(QUERY, {"out_trade_no": out_trade_no})["trade_status"] == "WAIT_BUYER_PAY"


def test_cancel_at_the_cashier_closes_the_trade_and_notifies(merchant: Merchant, receiver: Receiver) -> None:
    out_trade_no, location = merchant.online_trade(notify_url=receiver.url("/closed"))
    browser = Browser(merchant.emu, location)
    assert browser.post("cancel").status_code == 200
    assert "the trade is closed" in browser.page.text
    fields = merchant.ok(QUERY, {"out_trade_no": out_trade_no})
    assert fields["trade_status"] == "TRADE_CLOSED"
    assert "gmt_close" in fields
    (notification,) = receiver.wait("/closed", 1)
    assert notification.params["trade_status"] == "TRADE_CLOSED"
    assert verify(notification.params, "MD5", merchant.md5_key)
    # A closed trade can no longer be paid.
    paid = requests.post(
        f"{merchant.emu.base}/control/pay",
        json={"partner": merchant.partner, "out_trade_no": out_trade_no},
        headers=CONTROL_HEADERS,
        timeout=30,
    )
    assert (paid.status_code, paid.json()["error"]) == (409, "TRADE_HAS_CLOSE")


def test_control_pay_gives_the_signed_return_url(merchant: Merchant) -> None:
    out_trade_no, _ = merchant.online_trade("7.00", "GBP", return_url="http://shop.example/back")
    paid = merchant.emu.control(
        "pay", {"partner": merchant.partner, "out_trade_no": out_trade_no, "buyer": BUYER}
    )
    assert paid["trade_status"] == "TRADE_FINISHED"
    back = dict(parse_qsl(urlsplit(paid["return_url"]).query))
    assert verify(back, "MD5", merchant.md5_key)
    assert (back["total_fee"], back["currency"]) == ("7.00", "GBP")


def test_single_trade_query_fields_and_formats(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("clock", {"now": "2024-05-01T23:30:00+00:00"})  # 2024-05-02 07:30:00 in Beijing
    out_trade_no, _ = merchant.online_trade("20.00")
    waiting = merchant.ok(QUERY, {"out_trade_no": out_trade_no})
    assert waiting["trade_status"] == "WAIT_BUYER_PAY"
    assert waiting["gmt_create"] == "2024-05-02 07:30:00"
    assert "gmt_payment" not in waiting
    assert "buyer_id" not in waiting
    assert waiting["trade_no"].startswith("202405022200")
    assert len(waiting["trade_no"]) == 28
    emu.control("clock", {"advance": 90})
    emu.control("pay", {"partner": merchant.partner, "out_trade_no": out_trade_no})
    paid = merchant.ok(QUERY, {"trade_no": waiting["trade_no"]})
    assert paid["trade_status"] == "TRADE_FINISHED"
    assert paid["gmt_payment"] == "2024-05-02 07:31:30"
    assert (paid["total_fee"], paid["price"], paid["seller_id"]) == ("20.00", "20.00", merchant.partner)


def test_trade_no_wins_over_out_trade_no(merchant: Merchant) -> None:
    first, _ = merchant.online_trade("1.00")
    second, _ = merchant.online_trade("2.00")
    trade_no = merchant.ok(QUERY, {"out_trade_no": first})["trade_no"]
    fields = merchant.ok(QUERY, {"trade_no": trade_no, "out_trade_no": second})
    assert fields["out_trade_no"] == first
    assert merchant.error(QUERY, {"trade_no": "2024050122000000000000000000", "out_trade_no": second}) == (
        "TRADE_NOT_EXIST"
    )


def test_query_errors(merchant: Merchant) -> None:
    assert merchant.error(QUERY, {"out_trade_no": "never-created"}) == "TRADE_NOT_EXIST"
    assert merchant.error(QUERY, {}) == "ILLEGAL_ARGUMENT"


def _page_error(response: requests.Response) -> str:
    assert response.status_code == 200
    match = re.search(r'id="error-code">([A-Z_]+)<', response.text)
    assert match, response.text
    return match.group(1)


def test_duplicate_out_trade_no_when_the_gateway_resumes_an_identical_order(merchant: Merchant) -> None:
    merchant.emu.control("config", {"duplicate_trade": "resume_identical"})
    out_trade_no, location = merchant.online_trade("5.00")
    params = {
        "out_trade_no": out_trade_no,
        "subject": "Test order",
        "currency": "USD",
        "total_fee": "5.00",
        "product_code": "NEW_OVERSEAS_SELLER",
    }
    again = merchant.request("create_forex_trade", params)
    assert (again.status_code, again.headers["Location"]) == (302, location)
    assert (
        _page_error(merchant.request("create_forex_trade", {**params, "total_fee": "6.00"}))
        == "ILLEGAL_ARGUMENT"
    )
    merchant.emu.control("pay", {"partner": merchant.partner, "out_trade_no": out_trade_no})
    assert _page_error(merchant.request("create_forex_trade", params)) == "TRADE_HAS_SUCCESS"


BASE = {
    "subject": "Test order",
    "currency": "USD",
    "total_fee": "5.00",
    "product_code": "NEW_OVERSEAS_SELLER",
}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"subject": ""}, "ILLEGAL_ARGUMENT"),
        ({"currency": "CNY"}, "ILLEGAL_CURRENCY"),
        ({"currency": "XXX"}, "ILLEGAL_CURRENCY"),
        ({"currency": "usd"}, "ILLEGAL_ARGUMENT"),
        ({"total_fee": "5.001"}, "ILLEGAL_ARGUMENT"),
        ({"total_fee": "1000000.01"}, "ILLEGAL_ARGUMENT"),
        ({"total_fee": "1e3"}, "ILLEGAL_ARGUMENT"),
        ({"currency": "JPY", "total_fee": "500.5"}, "ILLEGAL_ARGUMENT"),
        ({"rmb_fee": "10.00"}, "ILLEGAL_ARGUMENT"),
        ({"product_code": "NEW_WAP_OVERSEAS_SELLER"}, "ILLEGAL_ARGUMENT"),
        ({"timeout_rule": "7m"}, "ILLEGAL_TIMEOUT_RULE"),
        ({"notify_url": "https://shop.example/notify?id=1"}, "ILLEGAL_ARGUMENT"),
        ({"return_url": "ftp://shop.example/return"}, "ILLEGAL_ARGUMENT"),
        ({"order_gmt_create": "2024-05-01 12:00:00"}, "ILLEGAL_ARGUMENT"),
    ],
)
def test_parameter_errors_show_an_error_page_naming_the_code(
    merchant: Merchant, change: dict, code: str
) -> None:
    params = {**BASE, "out_trade_no": new_id(), **change}
    assert _page_error(merchant.request("create_forex_trade", params)) == code


def test_a_bad_signature_on_a_page_service_shows_the_code(merchant: Merchant) -> None:
    params = merchant.build("create_forex_trade", {**BASE, "out_trade_no": new_id()})
    params["total_fee"] = "0.01"
    assert _page_error(merchant.send(params)) == "ILLEGAL_SIGN"


def test_wap_payment_needs_its_own_product_code(merchant: Merchant) -> None:
    params = {
        **BASE,
        "out_trade_no": new_id(),
        "product_code": "NEW_WAP_OVERSEAS_SELLER",
        "timeout_rule": "15d",
    }
    assert merchant.request("create_forex_trade_wap", params).status_code == 302
    wrong = {**BASE, "out_trade_no": new_id()}
    assert _page_error(merchant.request("create_forex_trade_wap", wrong)) == "ILLEGAL_ARGUMENT"


def test_post_form_from_the_browser_reaches_the_cashier(merchant: Merchant) -> None:
    response = merchant.request("create_forex_trade", {**BASE, "out_trade_no": new_id()}, method="POST")
    assert response.status_code == 302
    assert "/cashier/" in response.headers["Location"]


def test_unpaid_trade_expires_after_its_timeout_rule(emu: EmulatorProcess, merchant: Merchant) -> None:
    emu.control("clock", {"now": "2024-06-01T10:00:00+08:00"})
    out_trade_no, location = merchant.online_trade(timeout_rule="5m")
    emu.control("clock", {"advance": 299})
    assert merchant.ok(QUERY, {"out_trade_no": out_trade_no})["trade_status"] == "WAIT_BUYER_PAY"
    emu.control("clock", {"advance": 2})
    fields = merchant.ok(QUERY, {"out_trade_no": out_trade_no})
    assert fields["trade_status"] == "TRADE_CLOSED"
    assert fields["additional_trade_status"] == "DAEMON_CONFIRM_CLOSE"
    assert fields["gmt_close"] == "2024-06-01 10:05:00"
    assert "can no longer be paid" in Browser(emu, location).page.text


def test_rmb_priced_trade(merchant: Merchant) -> None:
    out_trade_no = new_id()
    params = {**BASE, "out_trade_no": out_trade_no, "rmb_fee": "66.46"}
    del params["total_fee"]
    assert merchant.request("create_forex_trade", params).status_code == 302
    fields = merchant.ok(QUERY, {"out_trade_no": out_trade_no})
    # 66.46 CNY at the emulator's fixed 6.6464 CNY per USD.
    assert fields["total_fee"] == "10.00"


def test_jpy_amounts_are_whole_numbers(merchant: Merchant) -> None:
    out_trade_no, _ = merchant.online_trade("1500", "JPY")
    assert merchant.ok(QUERY, {"out_trade_no": out_trade_no})["total_fee"] == "1500"
