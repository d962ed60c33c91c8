"""Fixtures for the emulator tests: the standalone emulator in a subprocess, test merchants, a receiver."""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from django_alipay.emulator.conf import OPEN_POINT_KNOBS
from django_alipay.protocol import dsa, keys
from tests.conftest import CONTROL_HEADERS
from tests.standalone import StandaloneEmulator

from .signer import Envelope, parse_envelope, sign, verify

ROOT = Path(__file__).resolve().parents[2]
_partner_numbers = itertools.count(100000000001)


def new_id(prefix: str = "T") -> str:
    """A unique merchant order / refund id."""
    return prefix + uuid.uuid4().hex[:20]


def public_pem(private_key: Any) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class EmulatorProcess(StandaloneEmulator):
    """``python -m django_alipay.emulator --port 0`` in a subprocess, logging to ``workdir/emulator.log``;
    :attr:`key_line` is the fingerprint line printed after the ready line."""

    def __init__(self, workdir: Path, *args: str, tz: str | None = None) -> None:
        super().__init__(*args, log=workdir / "emulator.log", env={"TZ": tz} if tz is not None else None)
        self.workdir = workdir
        self.key_line = ""
        self._alipay_keys: dict[str, Any] | None = None

    def start(self) -> EmulatorProcess:
        super().start()
        self.key_line = self.next_line(timeout=10)
        return self

    @property
    def base(self) -> str:
        return self.gateway.removesuffix("/gateway.do")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        code = super().stop(sig)
        assert code is not None, "the emulator was not started"
        return code

    def control(self, path: str, data: dict[str, Any] | None = None, *, method: str | None = None) -> Any:
        url = f"{self.base}/control/{path}"
        if (method or ("POST" if data is not None else "GET")) == "POST":
            response = requests.post(url, json=data or {}, headers=CONTROL_HEADERS, timeout=30)
        else:
            response = requests.get(url, timeout=30)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def alipay_public_key(self, sign_type: str) -> Any:
        if self._alipay_keys is None:
            self._alipay_keys = self.control("keys")["keys"]
        pem = self._alipay_keys[sign_type]["public_key_pem"]
        return keys.load_public_key(pem)

    def merchant(
        self,
        *,
        md5_key: str | None = "0123456789abcdefghijklmnopqrstuv",
        private_key: Any = None,
        sign_types: list[str] | None = None,
        services: list[str] | None = None,
        refund_interval: float | None = 0,
        partner: str | None = None,
    ) -> Merchant:
        partner = partner or f"2088{next(_partner_numbers):012d}"
        body: dict[str, Any] = {"partner": partner, "md5_key": md5_key or ""}
        if private_key is not None:
            body["merchant_public_key"] = public_pem(private_key)
        if sign_types is not None:
            body["sign_types"] = sign_types
        if services is not None:
            body["services"] = services
        body["refund_interval"] = refund_interval
        self.control("partners", body)
        return Merchant(self, partner, md5_key or "", private_key)


@dataclass
class Merchant:
    """A partner registered with the emulator, and how it signs and sends requests."""

    emu: EmulatorProcess
    partner: str
    md5_key: str
    private_key: Any = None

    def signing_key(self, sign_type: str) -> Any:
        return self.md5_key if sign_type == "MD5" else self.private_key

    def build(
        self,
        service: str,
        params: dict[str, str] | None = None,
        *,
        sign_type: str = "MD5",
        charset: str = "utf-8",
        include_charset: bool = True,
        signing_charset: str | None = None,
    ) -> dict[str, str]:
        """The full signed parameter set of a request."""
        full = {"service": service, "partner": self.partner, **(params or {})}
        if include_charset:
            full["_input_charset"] = charset
        full["sign"] = sign(full, sign_type, self.signing_key(sign_type), signing_charset or charset)
        full["sign_type"] = sign_type
        return full

    def send(
        self,
        params: dict[str, str],
        *,
        charset: str = "utf-8",
        method: str = "GET",
    ) -> requests.Response:
        """Send already-built parameters: GET query, or POST form with _input_charset in the URL."""
        gateway = self.emu.gateway
        if method == "GET":
            return requests.get(
                f"{gateway}?{urlencode(params, encoding=charset)}", allow_redirects=False, timeout=30
            )
        in_url = {"_input_charset": params["_input_charset"]} if "_input_charset" in params else {}
        body = {k: v for k, v in params.items() if k not in in_url}
        return requests.post(
            f"{gateway}?{urlencode(in_url)}" if in_url else gateway,
            data=urlencode(body, encoding=charset),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
            timeout=30,
        )

    def request(self, service: str, params: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        method = kwargs.pop("method", "GET")
        charset = kwargs.get("charset", "utf-8")
        return self.send(self.build(service, params, **kwargs), charset=charset, method=method)

    def xml(self, service: str, params: dict[str, str] | None = None, **kwargs: Any) -> Envelope:
        """Call a server-to-server service; check transport and, on success, the response signature."""
        sign_type = kwargs.get("sign_type", "MD5")
        response = self.request(service, params, **kwargs)
        assert response.status_code == 200, response.text
        envelope = parse_envelope(response.content)
        label = {"utf-8": "utf-8", "gbk": "GBK", "gb2312": "GB2312"}[envelope.charset]
        assert response.headers["Content-Type"] == f"text/xml; charset={label}"
        if envelope.sign is not None:
            key = self.md5_key if sign_type == "MD5" else self.emu.alipay_public_key(sign_type)
            assert envelope.sign_type == sign_type
            assert verify(envelope.signed_params(), sign_type, key, envelope.charset), envelope.raw
        return envelope

    def ok(self, service: str, params: dict[str, str] | None = None, **kwargs: Any) -> dict[str, str]:
        """A signed is_success=T answer's response fields."""
        envelope = self.xml(service, params, **kwargs)
        assert envelope.is_success, envelope.raw
        assert envelope.sign is not None, envelope.raw
        return envelope.fields

    def error(self, service: str, params: dict[str, str] | None = None, **kwargs: Any) -> str | None:
        """The code of an is_success=F answer, checking it is unsigned and has no response block."""
        envelope = self.xml(service, params, **kwargs)
        assert not envelope.is_success, envelope.raw
        assert envelope.sign is None
        assert envelope.element is None
        return envelope.error

    # --- common flows

    def spot_pay(
        self, barcode: str, amount: str = "10.00", currency: str = "USD", **extra: str
    ) -> dict[str, str]:
        params = {
            "alipay_seller_id": self.partner,
            "trans_name": "Coffee",
            "partner_trans_id": extra.pop("partner_trans_id", None) or new_id("P"),
            "currency": currency,
            "trans_amount": amount,
            "buyer_identity_code": barcode,
            "identity_code_type": "barcode",
            "trans_create_time": "20240501120000",
            "biz_product": "OVERSEAS_MBARCODE_PAY",
            **extra,
        }
        return self.ok("alipay.acquire.overseas.spot.pay", params)

    def online_trade(self, amount: str = "100.00", currency: str = "USD", **extra: str) -> tuple[str, str]:
        """Create an online trade; return (out_trade_no, cashier URL)."""
        out_trade_no = extra.pop("out_trade_no", None) or new_id()
        params = {
            "out_trade_no": out_trade_no,
            "subject": "Test order",
            "currency": currency,
            "total_fee": amount,
            "product_code": "NEW_OVERSEAS_SELLER",
            **extra,
        }
        response = self.request("create_forex_trade", params)
        assert response.status_code == 302, response.text
        return out_trade_no, response.headers["Location"]

    def paid_online_trade(self, amount: str = "100.00", currency: str = "USD", **extra: str) -> str:
        out_trade_no, _ = self.online_trade(amount, currency, **extra)
        self.emu.control("pay", {"partner": self.partner, "out_trade_no": out_trade_no})
        return out_trade_no


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    body: bytes
    headers: dict[str, str]
    at: float
    params: dict[str, str] = field(default_factory=dict)


Answer = Callable[[Received], tuple[int, str]]


class Receiver:
    """A tiny merchant web server: records every request and answers what each path is told to."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[Answer]] = {}
        self.condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                charset = self.headers.get("Content-Type", "").partition("charset=")[2] or "utf-8"
                record = Received(
                    path=self.path,
                    body=body,
                    headers=dict(self.headers.items()),
                    at=time.monotonic(),
                    params=dict(parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding=charset)),
                )
                status, text = receiver._answer(record)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                with receiver.condition:
                    receiver.received.append(record)
                    receiver.condition.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def _answer(self, record: Received) -> tuple[int, str]:
        answers = self.answers.get(record.path)
        if not answers:
            return 200, "fail"
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(record)

    def url(self, path: str = "/notify") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, path: str, *answers: str | Answer) -> None:
        """Answer requests to ``path`` with these in turn (the last one repeats)."""
        self.answers[path] = [
            (lambda record, text=a: (200, text)) if isinstance(a, str) else a  # type: ignore[misc]
            for a in answers
        ]

    def wait(self, path: str, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                got = [r for r in self.received if r.path == path]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"only {len(got)} of {count} requests reached {path}"
                self.condition.wait(remaining)

    def got(self, path: str) -> list[Received]:
        with self.condition:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator")).start()
    yield process
    assert process.stop() == 0


@pytest.fixture
def emu(emulator_process: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The session's emulator; faults, clock, time scale and open-point knobs are put back after each test."""
    yield emulator_process
    emulator_process.control("faults", {})
    emulator_process.control("clock", {"now": "real", "time_scale": 1})
    emulator_process.control("config", {name: values[0] for name, values in OPEN_POINT_KNOBS.items()})


@pytest.fixture
def merchant(emu: EmulatorProcess) -> Merchant:
    """A fresh MD5 partner (no refund spacing)."""
    return emu.merchant()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def dsa_key() -> dsa.DSAPrivateKey:
    # 1024 bits: SHA1withDSA, the gateway's DSA algorithm, is defined for 160-bit subgroups only.
    return dsa.generate(1024)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


BUYER = "buyer@alitest.com"
BARCODE = "286123456789012345"
POOR_BARCODE = "260000000000000004"
FROZEN_BARCODE = "270000000000000005"
SLOW_BARCODE = "290000000000000006"
HK_BARCODE = "300000000000000000000123"
PHONE_BARCODE = "2512345678901234"
