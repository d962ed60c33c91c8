"""The headless demo journey: a shopper, a buyer at the cashier, and the shop's staff, all over real HTTP.

Each step prints what it does as it happens and checks that the shop, the gateway and the library did what
they should; the first step that does not stops the journey. Used by ``manage.py demo_checkout``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests
from rich.console import Console
from rich.table import Table

from django_alipay.domain import clock as domain_clock
from django_alipay.emulator import CONTROL_TOKEN_HEADER
from django_alipay.emulator.conf import control_token
from django_alipay.protocol.clock import BEIJING, FixedClock, beijing_date

__all__ = ["Journey", "StepFailed"]

BUYER = "buyer@alitest.com"
BUYER_PASSWORD = "111111"  # noqa: S105 - the emulator's published test password
#: The emulator's phone-login buyer: the barcode the point of sale scans.
STORE_BARCODE = "2512345678901234"
_WAIT = 30.0


class StepFailed(Exception):
    """A step did not do what it should; the message says what happened instead."""


@dataclass
class Form:
    """One HTML form: where it posts, and its named inputs' values."""

    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, Form] = {}
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(found.get("action", ""))
            self.forms[found.get("id") or found.get("action", "")] = self._current
        elif tag == "input" and self._current is not None and found.get("name"):
            self._current.fields[found["name"]] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(html: str) -> dict[str, Form]:
    """The page's forms by id (or action when they have none)."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


@dataclass
class Result:
    """One step's outcome, for the summary."""

    title: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class OrderSeen:
    """An order the journey made, for the summary."""

    number: str
    channel: str
    amount: str
    state: str = ""
    refunded: str = ""


class Step:
    """What a step body uses: ``note`` prints a line, ``check`` fails the step when a condition is false."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.summary = ""

    def note(self, text: str) -> None:
        self.console.print(f"    {text}")

    def check(self, condition: object, failure: str) -> None:
        if not condition:
            raise StepFailed(failure)


class Journey:
    """The whole demo, step by step, against the shop served at ``base_url``."""

    def __init__(self, console: Console, base_url: str, *, staff: tuple[str, str], partner: str) -> None:
        self.console = console
        self.base = base_url.rstrip("/")
        self.staff = staff
        self.partner = partner
        self.results: list[Result] = []
        self.orders: list[OrderSeen] = []
        self.shopper = self._session()
        self.cashier = self._session()
        self.api = self._session()
        self.api.auth = staff
        self.api.headers["Accept"] = "application/json"
        self._online: dict[str, Any] = {}
        self._store: dict[str, Any] = {}

    @staticmethod
    def _session() -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # local calls never go through a proxy from the environment
        return session

    # --- running -----------------------------------------------------------------------------------------

    @contextmanager
    def step(self, title: str, short: str = "") -> Iterator[Step]:
        """Print ``title``, run the body, print ✓ or ✗; ``short`` names the step in the summary."""
        number = len(self.results) + 1
        self.console.print(f"\n[bold cyan]{number:>2}. {title}[/]")
        started = time.monotonic()
        step = Step(self.console)
        try:
            yield step
        except (StepFailed, requests.RequestException, KeyError, ValueError) as exc:
            seconds = time.monotonic() - started
            self.console.print(f"    [bold red]✗ {exc}[/]")
            self.results.append(Result(short or title, False, seconds, str(exc)))
            raise StepFailed(str(exc)) from exc
        seconds = time.monotonic() - started
        self.console.print(f"    [green]✓[/] [dim]{seconds:.1f} s[/]")
        self.results.append(Result(short or title, True, seconds, step.summary))

    def run(self) -> bool:
        """Every step in order, stopping at the first failure; True when all passed."""
        steps: list[Callable[[], None]] = [
            self.checkout,
            self.pay_at_cashier,
            self.notification_arrives,
            self.order_is_paid,
            self.first_refund,
            self.second_refund,
            self.over_refund,
            self.in_store_payment,
            self.reverse_next_day,
            self.refund_instead,
        ]
        try:
            for run_step in steps:
                run_step()
        except StepFailed:
            return False
        finally:
            self._free_clocks()
        return True

    # --- helpers -----------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return urljoin(self.base + "/", path.lstrip("/"))

    def _post_form(
        self,
        session: requests.Session,
        page: requests.Response,
        form_id: str,
        *,
        follow: bool = True,
        **values: str,
    ) -> requests.Response:
        """Submit the form ``form_id`` of ``page`` (hidden fields and CSRF token included) with ``values``."""
        found = forms(page.text)
        if form_id not in found:
            raise StepFailed(f"no form {form_id!r} on {page.url}")
        form = found[form_id]
        data = {**form.fields, **values}
        target = urljoin(page.url, form.action or page.url)
        return session.post(target, data=data, allow_redirects=follow, timeout=60)

    def _status(self, session: requests.Session, number: str) -> dict[str, Any]:
        response = session.get(self.url(f"/orders/{number}/status.json"), timeout=_WAIT)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def _wait_for(self, what: str, probe: Callable[[], Any], timeout: float = _WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StepFailed(f"{what}: nothing after {timeout:.0f} s")
            time.sleep(0.25)

    def _trade_id(self, number: str) -> int:
        answer = self.api.get(self.url("/alipay/api/trades/"), params={"out_trade_no": number}, timeout=_WAIT)
        answer.raise_for_status()
        results = answer.json()["results"]
        if len(results) != 1:
            raise StepFailed(f"the API lists {len(results)} trades for {number}")
        return int(results[0]["id"])

    def _refund(self, trade_id: int, amount: str, reason: str) -> requests.Response:
        return self.api.post(
            self.url(f"/alipay/api/trades/{trade_id}/refunds/"),
            json={"amount": amount, "reason": reason},
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=60,
        )

    def _settled_refund(self, step: Step, answer: requests.Response) -> dict[str, Any]:
        step.check(answer.status_code == 201, f"the API answered {answer.status_code}: {answer.text[:300]}")
        refund: dict[str, Any] = answer.json()
        if refund["status"] == "requested":
            step.note("queued: a Celery worker sends it to Alipay")
        if refund["status"] == "submitted":
            # Between 00:00 and 01:30 Beijing time Alipay refunds asynchronously: the result is notified.
            step.note("Alipay accepted it and will notify the result (00:00-01:30 Beijing: refunds go async)")
        if refund["status"] in ("requested", "submitted"):

            def settled() -> dict[str, Any] | None:
                data: dict[str, Any] = self.api.get(
                    self.url(f"/alipay/api/refunds/{refund['id']}/"), timeout=_WAIT
                ).json()
                return data if data["status"] not in ("requested", "submitted") else None

            refund = self._wait_for("the refund's result", settled)
        step.check(refund["status"] == "succeeded", f"the refund is {refund['status']}: {refund}")
        return refund

    def _emulator_now(self) -> str:
        return str(self.cashier.get(self.url("/emulator/control/clock"), timeout=_WAIT).json()["now"])

    def _set_emulator_clock(self, now: str) -> None:
        # The journey runs in the process that serves the emulator, so it knows the control token.
        self.cashier.post(
            self.url("/emulator/control/clock"),
            data={"now": now},
            headers={CONTROL_TOKEN_HEADER: control_token()},
            timeout=_WAIT,
        ).raise_for_status()

    def _free_clocks(self) -> None:
        domain_clock.set_clock(None)
        with contextlib.suppress(requests.RequestException):
            self._set_emulator_clock("real")

    # --- the steps ---------------------------------------------------------------------------------------

    def checkout(self) -> None:
        with self.step(
            "A shopper puts two things in the cart and checks out",
            "Checkout: cart -> create_trade -> cashier",
        ) as step:
            front = self.shopper.get(self.url("/"), timeout=_WAIT)
            step.check(front.status_code == 200, f"the shop front answered {front.status_code}")
            for slug in ("clay-teapot", "celadon-teacup"):
                added = self._post_form(self.shopper, front, f"/cart/add/{slug}/")
                step.check(added.status_code == 200, f"adding {slug} answered {added.status_code}")
            step.note("cart: 1 x Clay teapot (88.00 USD), 1 x Celadon teacup (18.00 USD)")
            cart = self.shopper.get(self.url("/cart/"), timeout=_WAIT)
            checkout = self._post_form(self.shopper, cart, "/checkout/", follow=False, channel="web")
            gone_to = checkout.headers.get("Location", "")
            step.check(
                checkout.status_code == 302 and "gateway.do" in gone_to, "checkout did not go to Alipay"
            )
            query = dict(parse_qsl(urlsplit(gone_to).query))
            step.check(
                query.get("service") == "create_forex_trade", f"unexpected service {query.get('service')}"
            )
            number = query["out_trade_no"]
            step.note(
                f"order [bold]{number}[/]: create_trade -> {query['total_fee']} {query['currency']}, "
                f"signed {query['sign_type']}"
            )
            step.note(f"the browser is sent to {urlsplit(gone_to).path}?service=create_forex_trade&...")
            self._online = {"number": number, "cashier": gone_to}
            self.orders.append(OrderSeen(number, "online (web)", f"{query['total_fee']} {query['currency']}"))
            step.summary = number

    def pay_at_cashier(self) -> None:
        with self.step(f"The buyer pays at Alipay's cashier as {BUYER}", "Buyer pays at the cashier") as step:
            page = self.shopper.get(self._online["cashier"], timeout=_WAIT)
            step.check(page.status_code == 200 and "login-form" in page.text, "the cashier page did not open")
            step.note(f"cashier: {urlsplit(page.url).path}")
            confirm = self._post_form(
                self.shopper, page, "login-form", login_id=BUYER, password=BUYER_PASSWORD
            )
            step.check("pay-form" in confirm.text, "the buyer could not log in")
            step.note(f"logged in as {BUYER}; pressing Pay")
            back = self._post_form(self.shopper, confirm, "pay-form")
            path = urlsplit(back.url).path
            hops = [urlsplit(r.headers.get("Location", "")).path for r in back.history]
            step.note("redirected: " + " -> ".join(hops))
            step.check(path == f"/orders/{self._online['number']}/", f"the buyer ended up at {back.url}")
            step.note(f"back at the shop: {path}")

    def notification_arrives(self) -> None:
        number = self._online["number"]
        with self.step(
            "Alipay's notification arrives and is verified", "Notification received and verified"
        ) as step:
            started = time.monotonic()

            def acknowledged() -> dict[str, Any] | None:
                listing = self.cashier.get(
                    self.url("/emulator/control/notifications"),
                    params={"partner": self.partner, "out_trade_no": number},
                    timeout=_WAIT,
                ).json()
                sends = [d for d in listing["deliveries"] if d["outcome"] == "acknowledged"]
                return sends[0] if sends else None

            send = self._wait_for("the notification", acknowledged)
            step.note(
                f"emulator -> POST {urlsplit(send['url']).path[:32]}... answered "
                f"{send['status_code']} {send['response_text']!r} (within {time.monotonic() - started:.1f} s)"
            )
            stored = self.api.get(
                self.url("/alipay/api/notifications/"), params={"out_trade_no": number}, timeout=_WAIT
            ).json()["results"]
            trade_notes = [n for n in stored if n["kind"] == "trade"]
            step.check(trade_notes, "the shop stored no notification")
            note = trade_notes[0]
            step.note(
                f"stored: notify_id {note['notify_id'][:16]}..., signature + notify_verify: "
                f"[bold]{note['verification']}[/], outcome: [bold]{note['outcome']}[/]"
            )
            step.check(note["verification"] == "verified", f"verification is {note['verification']}")
            step.check(note["outcome"] == "processed", f"outcome is {note['outcome']}")

    def order_is_paid(self) -> None:
        number = self._online["number"]
        with self.step("The order page says Paid", "Order paid (status.json)") as step:
            status = self._wait_for(
                "the order to be paid", lambda: (s := self._status(self.shopper, number))["paid"] and s
            )
            trade = status["trade"]
            step.note(
                f"status.json: [bold green]{status['label']}[/], Alipay trade {trade['trade_no']}, "
                f"trade status {trade['status']}"
            )
            step.check(status["status"] == "paid", f"the order is {status['status']}")
            self._online["trade_id"] = self._trade_id(number)
            self.orders[0].state = status["label"]

    def first_refund(self) -> None:
        with self.step(
            "The shop refunds 10.00 USD (a chipped cup), through the REST API",
            "Partial refund 10.00 USD (API)",
        ) as step:
            answer = self._refund(self._online["trade_id"], "10.00", "Chipped cup")
            refund = self._settled_refund(step, answer)
            step.note(
                f"POST /alipay/api/trades/{self._online['trade_id']}/refunds/ -> 201, {refund['kind']} "
                f"{refund['gateway_refund_id']}: [bold]{refund['status']}[/]"
            )

    def second_refund(self) -> None:
        with self.step("A second partial refund: 12.50 USD", "Second partial refund 12.50 USD") as step:
            step.note("(the library keeps Alipay's 3 s between two refunds of one partner: it waits here)")
            refund = self._settled_refund(
                step, self._refund(self._online["trade_id"], "12.50", "Late delivery")
            )
            step.note(f"{refund['gateway_refund_id']}: [bold]{refund['status']}[/]")
            status = self._status(self.shopper, self._online["number"])
            step.note(
                f"order: {status['label']}, refunded {status['trade']['refunded']} USD, "
                f"{status['trade']['refundable']} USD left"
            )
            step.check(status["trade"]["refunded"] == "22.50", f"refunded {status['trade']['refunded']}")

    def over_refund(self) -> None:
        with self.step(
            "Trying to refund 90.00 USD, more than is left, is refused", "Over-refund refused (409)"
        ) as step:
            before = len(self._refund_calls())
            answer = self._refund(self._online["trade_id"], "90.00", "Too much")
            step.check(
                answer.status_code == 409, f"the API answered {answer.status_code}: {answer.text[:200]}"
            )
            error = answer.json()["error"]
            step.note(f"409 {error['code']}: [italic]{error['message']}[/]")
            step.check(error["code"] == "refund_amount_exceeded", f"error code {error['code']}")
            step.check(len(self._refund_calls()) == before, "a refund call reached the gateway")
            step.note("nothing was sent to Alipay")
            status = self._status(self.shopper, self._online["number"])
            self.orders[0].state = status["label"]
            self.orders[0].refunded = f"{status['trade']['refunded']} USD"

    def _refund_calls(self) -> list[Any]:
        answer = self.cashier.get(
            self.url("/emulator/control/calls"),
            params={"partner": self.partner, "service": "forex_refund"},
            timeout=_WAIT,
        ).json()
        return [call for call in answer["calls"] if call.get("outcome") != "refused"]

    def in_store_payment(self) -> None:
        with self.step(
            "In store: the cashier scans a buyer's barcode at the point of sale",
            "In-store barcode payment (POS)",
        ) as step:
            login = self.cashier.get(self.url("/admin/login/?next=/pos/"), timeout=_WAIT)
            pos = self._post_form(
                self.cashier,
                login,
                "login-form",
                username=self.staff[0],
                password=self.staff[1],
                next="/pos/",
            )
            step.check(urlsplit(pos.url).path == "/pos/", "the staff member could not log in")
            step.note(f"staff logged in; 1 x Oolong tea, barcode {STORE_BARCODE} (buyer 13800138000)")
            fields = forms(pos.text)["pos-form"].fields
            quantities = {name: "0" for name in fields if name.startswith("qty-")}
            oolong = self._field_for(pos.text, "oolong-tea")
            step.check(oolong, "the point of sale does not sell Oolong tea")
            charged = self.cashier.post(
                self.url("/pos/"),
                data={**fields, **quantities, str(oolong): "1", "barcode": STORE_BARCODE, "mode": "barcode"},
                timeout=60,
            )
            path = urlsplit(charged.url).path
            step.check(path.startswith("/orders/POS-"), f"the point of sale ended at {charged.url}")
            number = path.split("/")[2]
            status = self._status(self.cashier, number)
            step.note(
                f"order [bold]{number}[/]: spot pay answered at once -> [bold green]{status['label']}[/], "
                f"trade {status['trade']['trade_no']}"
            )
            step.check(
                status["status"] == "paid", f"the in-store order is {status['status']}: {status['problem']}"
            )
            self._store = {"number": number, "trade_id": self._trade_id(number)}
            self.orders.append(
                OrderSeen(number, "in store (barcode)", f"{status['total']} USD", status["label"])
            )

    @staticmethod
    def _field_for(html: str, slug: str) -> str | None:
        marker = f'id="qty-{slug}"'
        at = html.find(marker)
        if at < 0:
            return None
        start = html.rfind("<input", 0, at)
        name_at = html.find('name="', start) + len('name="')
        return html[name_at : html.find('"', name_at)]

    def reverse_next_day(self) -> None:
        with self.step(
            "The next day (Beijing time) the shop tries to reverse it: refused",
            "Reverse next Beijing day refused",
        ) as step:
            paid_day = beijing_date(datetime.now(BEIJING))
            tomorrow = datetime.combine(paid_day + timedelta(days=1), datetime.min.time(), BEIJING)
            when = tomorrow.replace(hour=10)
            domain_clock.set_clock(FixedClock(when))
            self._set_emulator_clock(when.isoformat())
            step.note(
                f"clocks moved (domain.clock and the emulator's) to {when:%Y-%m-%d %H:%M} Beijing"
                f" (emulator: {self._emulator_now()[:19]})"
            )
            answer = self.api.post(
                self.url(f"/alipay/api/trades/{self._store['trade_id']}/reverse/"),
                json={"reason": "Customer changed their mind"},
                timeout=_WAIT,
            )
            step.check(
                answer.status_code == 409, f"the API answered {answer.status_code}: {answer.text[:200]}"
            )
            error = answer.json()["error"]
            step.note(f"409 {error['code']}: [italic]{error['message']}[/]")
            step.check(error["code"] == "reverse_not_allowed", f"error code {error['code']}")

    def refund_instead(self) -> None:
        with self.step("...so it refunds the whole amount instead", "Full refund instead") as step:
            status = self._status(self.cashier, self._store["number"])
            refund = self._settled_refund(
                step, self._refund(self._store["trade_id"], status["total"], "Customer changed their mind")
            )
            step.note(
                f"{refund['kind']} of {refund['amount']} {refund['currency']} (spot refund): "
                f"[bold]{refund['status']}[/]"
            )
            status = self._status(self.cashier, self._store["number"])
            step.check(status["status"] == "refunded", f"the order is {status['status']}")
            self.orders[1].state = status["label"]
            self.orders[1].refunded = f"{status['trade']['refunded']} USD"

    # --- summary -----------------------------------------------------------------------------------------

    def summary(self) -> Table:
        """The steps and the orders, as one table each (steps first)."""
        table = Table(title="Summary", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("Step")
        table.add_column("Result")
        table.add_column("Time", justify="right")
        for number, result in enumerate(self.results, 1):
            mark = "[green]✓ ok[/]" if result.ok else f"[red]✗ {result.detail[:60]}[/]"
            table.add_row(str(number), result.title, mark, f"{result.seconds:.1f} s")
        return table

    def orders_table(self) -> Table:
        """The orders made, with their final state."""
        table = Table(title="Orders")
        for column in ("Order", "Channel", "Amount", "Refunded", "Status"):
            table.add_column(column)
        for order in self.orders:
            table.add_row(order.number, order.channel, order.amount, order.refunded or "—", order.state)
        return table
