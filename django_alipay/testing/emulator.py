"""Run the standalone gateway emulator in a subprocess for a test, and drive it through its control API.

:class:`EmulatorProcess` starts ``python -m django_alipay.emulator`` on a free port with a freshly generated
partner id and MD5 key, a merchant key pair, and "Alipay" key pairs it hands to the emulator, so a test can
sign anything Alipay would sign. The partner is registered over the control API (keys never appear on a
command line). Nothing here imports Django except :meth:`EmulatorProcess.merchant`, which creates a
django_alipay Merchant pointed at the emulator.
"""

from __future__ import annotations

import functools
import os
import queue
import secrets
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import requests

from django_alipay.emulator import CONTROL_TOKEN_HEADER
from django_alipay.protocol import clock as protocol_clock
from django_alipay.protocol import keys, signing
from django_alipay.protocol.clock import Clock
from django_alipay.protocol.errors import AlipayBusinessError, AlipayError, InvalidParameterError
from django_alipay.protocol.notifications import parse_form

from .clock import parse_when
from .faults import Fault, FaultInjector

if TYPE_CHECKING:
    from django_alipay.models import Merchant

__all__ = [
    "Delivery",
    "EmulatorProcess",
    "Payment",
    "generated_key_pem",
    "new_md5_key",
    "new_partner_id",
    "stop_process",
]

START_TIMEOUT: Final = 60.0
_STOP_TIMEOUT: Final = 10.0
_HTTP_TIMEOUT: Final = 30.0
_ALNUM: Final = string.ascii_letters + string.digits


def new_partner_id() -> str:
    """A random partner id in Alipay's shape: ``2088`` and 12 digits."""
    return "2088" + "".join(secrets.choice(string.digits) for _ in range(12))


def new_md5_key() -> str:
    """A random MD5 key in the portal's shape: 32 letters and digits."""
    return "".join(secrets.choice(_ALNUM) for _ in range(32))


@functools.cache
def generated_key_pem(role: Literal["alipay", "merchant"], family: Literal["RSA", "DSA"]) -> str:
    """A PKCS#8 PEM private key for tests, made once per process per role and family and then reused.

    RSA keys are 2048-bit (they serve RSA and RSA2), DSA keys 1024-bit (SHA1withDSA's size). Generating keys
    is the slow part of starting an emulator, and test keys protect nothing, so they are shared.
    """
    sign_type = "DSA" if family == "DSA" else "RSA2"
    return keys.private_key_pem(keys.generate_private_key(sign_type))


def _public_pem(private_pem: str) -> str:
    return keys.public_key_pem(private_pem)


@dataclass(frozen=True)
class Payment:
    """What ``control/pay`` answered: the paid trade and, for online trades, the signed return URL."""

    out_trade_no: str
    trade_no: str
    trade_status: str
    buyer: str | None
    return_url: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def return_query(self) -> str:
        """The query string of the return URL (what the shop's return view receives), or ``""``."""
        return urlsplit(self.return_url).query if self.return_url else ""


@dataclass(frozen=True)
class Delivery:
    """One notification send the emulator made (or dropped): where, what, and what the shop answered."""

    id: int
    notify_type: str
    out_trade_no: str
    trade_no: str
    notify_id: str
    url: str
    body: str = field(repr=False)
    outcome: str
    status_code: int | None
    attempt: int
    duplicate: bool
    state: str
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivery:
        """Build from one entry of ``control/notifications``' ``deliveries``."""
        return cls(
            id=int(data["id"]),
            notify_type=str(data["notify_type"]),
            out_trade_no=str(data["out_trade_no"]),
            trade_no=str(data.get("trade_no") or ""),
            notify_id=str(data["notify_id"]),
            url=str(data["url"]),
            body=str(data["body"]),
            outcome=str(data.get("outcome") or ""),
            status_code=data.get("status_code"),
            attempt=int(data.get("attempt") or 0),
            duplicate=bool(data.get("duplicate")),
            state=str(data.get("state") or ""),
            raw=dict(data),
        )

    @property
    def body_bytes(self) -> bytes:
        """The form body exactly as POSTed (percent-encoded ASCII)."""
        return self.body.encode("ascii")

    @property
    def content_type(self) -> str:
        """The body's media type (the charset is the merchant's; the body is plain ASCII)."""
        return "application/x-www-form-urlencoded"

    @property
    def path(self) -> str:
        """The path of the notify URL it was sent to (where a test client should post it)."""
        return urlsplit(self.url).path or "/"

    def params(self, charset: str = "utf-8") -> dict[str, str]:
        """The decoded fields, in ``charset`` (the merchant's)."""
        return parse_form(self.body_bytes, content_type=self.content_type, default_charset=charset).params


def _control_error(response: requests.Response, what: str) -> AlipayError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    code = str(data.get("error") or f"HTTP_{response.status_code}")
    message = str(data.get("message") or response.text[:300])
    if response.status_code == 400:
        return InvalidParameterError(f"the emulator refused {what}: {message}", parameter=what)
    if response.status_code in (404, 409):
        return AlipayBusinessError(f"{what}: {code}: {message}", code=code, description=message)
    return AlipayError(f"{what}: the emulator answered HTTP {response.status_code}: {message}", code=code)


def stop_process(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = _STOP_TIMEOUT
) -> int | None:
    """Stop a subprocess and close its stdout pipe; returns its exit code.

    Sends ``sig`` when it is still running and waits ``timeout`` seconds, then SIGKILLs it: its whole process
    group when it leads one of its own (``start_new_session=True``), so a hung process and what it started go
    together, else the process alone.
    """
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if _leads_own_group(process.pid):
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait(timeout=timeout)
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def _leads_own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid and pid != os.getpgid(0)
    except ProcessLookupError:
        return False


class EmulatorProcess:
    """One standalone emulator process on a free port, with a partner registered for the test.

    ``merchant_key`` chooses the merchant's own key pair: ``"RSA"`` (the partner may sign MD5, RSA, RSA2),
    ``"DSA"`` (MD5, DSA) or None (MD5 only). ``notifier=False`` (the default) leaves notifications unsent
    until the test asks for them (:meth:`deliver`, :meth:`notifications`): deterministic, and no thread
    races the test. ``refund_interval`` defaults to 0 so refunds in a test need not be 3 s apart.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        partner: str | None = None,
        md5_key: str | None = None,
        merchant_key: Literal["RSA", "DSA"] | None = "RSA",
        sign_types: Iterable[str] | None = None,
        services: Iterable[str] | None = None,
        time_scale: float = 1.0,
        refund_interval: float = 0.0,
        notifier: bool = False,
        seed: int = 0,
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if merchant_key not in ("RSA", "DSA", None):
            raise InvalidParameterError("merchant_key must be 'RSA', 'DSA' or None", parameter="merchant_key")
        self.partner = partner or new_partner_id()
        self.md5_key = md5_key or new_md5_key()
        self.merchant_key = merchant_key
        self.merchant_private_key: str | None = (
            generated_key_pem("merchant", merchant_key) if merchant_key else None
        )
        self.merchant_public_key: str | None = (
            _public_pem(self.merchant_private_key) if self.merchant_private_key else None
        )
        self._alipay_private = {
            "RSA": generated_key_pem("alipay", "RSA"),
            "DSA": generated_key_pem("alipay", "DSA"),
        }
        self.alipay_public_keys: dict[str, str] = {
            "RSA": _public_pem(self._alipay_private["RSA"]),
            "RSA2": _public_pem(self._alipay_private["RSA"]),
            "DSA": _public_pem(self._alipay_private["DSA"]),
        }
        self.sign_types = [signing.normalize_sign_type(name) for name in sign_types] if sign_types else None
        self.services = list(services) if services else None
        self.refund_interval = refund_interval
        self._options = {"time_scale": time_scale, "notifier": notifier, "seed": seed, "host": host}
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self._workdir: Path | None = None
        self._stderr: Any = None
        #: This run's control token (sent as ``X-Emulator-Token`` with every control call).
        self.control_token = secrets.token_urlsafe(24)
        self._session = requests.Session()
        # Local calls must never go through a proxy named in the environment.
        self._session.trust_env = False
        self._session.headers[CONTROL_TOKEN_HEADER] = self.control_token
        self.gateway_url = ""
        self.base_url = ""
        self._faults = FaultInjector(self._apply_faults)

    # --- keys -------------------------------------------------------------------------------------------

    @property
    def alipay_public_key(self) -> str:
        """Alipay's (the emulator's) public key PEM for the merchant's sign type family (RSA unless DSA)."""
        return self.alipay_public_keys["DSA" if self.merchant_key == "DSA" else "RSA"]

    def alipay_signing_key(self, sign_type: str = "MD5") -> str:
        """The key Alipay signs ``sign_type`` with here: the MD5 key, or the emulator's private key PEM.

        Hand it to the builders to forge nothing: a notification signed with it verifies exactly like one the
        emulator sends.
        """
        kind = signing.normalize_sign_type(sign_type)
        if kind == "MD5":
            return self.md5_key
        return self._alipay_private["DSA" if kind == "DSA" else "RSA"]

    # --- process ----------------------------------------------------------------------------------------

    def start(self) -> EmulatorProcess:
        """Start the process, wait for its ``ready`` line, register the partner; returns self."""
        if self._process is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="alipay-testing-"))
        rsa_file = self._workdir / "alipay-rsa.pem"
        dsa_file = self._workdir / "alipay-dsa.pem"
        rsa_file.write_text(self._alipay_private["RSA"])
        dsa_file.write_text(self._alipay_private["DSA"])
        command = [sys.executable, "-m", "django_alipay.emulator", "--host", str(self._options["host"])]
        command += ["--port", "0", "--quiet", "--db", str(self._workdir / "emulator.sqlite3")]
        command += ["--alipay-rsa-key", str(rsa_file), "--alipay-dsa-key", str(dsa_file)]
        command += ["--time-scale", str(self._options["time_scale"]), "--seed", str(self._options["seed"])]
        if not self._options["notifier"]:
            command.append("--no-notifier")
        # One argument with "=": a token may begin with "-", which argparse would take for an option.
        command.append(f"--control-token={self.control_token}")
        command += list(self._extra_args)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(self._process, lines), daemon=True).start()
        try:
            ready = lines.get(timeout=self._start_timeout).split()
        except queue.Empty:
            ready = []
        if len(ready) != 2 or ready[0] != "ready":
            log = self.stderr()
            self.stop()
            raise AlipayError(f"the gateway emulator did not start (got {ready!r}); its stderr ends:\n{log}")
        self.gateway_url = ready[1]
        self.base_url = self.gateway_url.removesuffix("gateway.do")
        self._register()
        return self

    @staticmethod
    def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
        # Keeps reading so the pipe never fills; the end of output is signalled with an empty line.
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    def _register(self) -> None:
        data: dict[str, Any] = {
            "partner": self.partner,
            "md5_key": self.md5_key,
            "merchant_public_key": self.merchant_public_key or "",
            "refund_interval": self.refund_interval,
        }
        if self.sign_types:
            data["sign_types"] = self.sign_types
        if self.services:
            data["services"] = self.services
        self.control("partners", data)

    def stop(self) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s) and remove its files; returns its exit code."""
        process, self._process = self._process, None
        code = stop_process(process) if process is not None else None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        self._session.close()
        return code

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def stderr(self) -> str:
        """The last 4000 characters the process wrote to stderr (for a failing test's report)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text: str = self._stderr.read().decode("utf-8", "replace")
        return text[-4000:]

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        # The MD5 key and the private keys are left out on purpose.
        where = self.gateway_url or "not started"
        return f"<EmulatorProcess {where} partner={self.partner} merchant_key={self.merchant_key}>"

    # --- control API --------------------------------------------------------------------------------------

    def control(self, path: str, data: Mapping[str, Any] | None = None, *, method: str | None = None) -> Any:
        """Call ``control/<path>``: POST ``data`` as JSON (GET when ``data`` is None); returns the answer.

        Raises InvalidParameterError for a refused request (HTTP 400), AlipayBusinessError with the code for
        404/409 (no such trade, already paid), AlipayError otherwise.
        """
        if not self.base_url:
            raise AlipayError("the emulator is not started")
        verb = method or ("GET" if data is None else "POST")
        url = self.base_url + "control/" + path
        if verb == "GET":
            response = self._session.get(url, params=dict(data or {}), timeout=_HTTP_TIMEOUT)
        else:
            response = self._session.post(url, json=dict(data or {}), timeout=_HTTP_TIMEOUT)
        if response.status_code != 200:
            raise _control_error(response, f"control/{path}")
        return response.json()

    def visit(self, url: str) -> requests.Response:
        """Open a page-service URL (``TradeStart.url``) as the buyer's browser would, up to the cashier.

        The emulator creates an online trade when the browser arrives, so do this before :meth:`pay`.
        """
        response = self._session.get(url, timeout=_HTTP_TIMEOUT)
        if response.status_code >= 400:
            raise AlipayError(f"the cashier answered HTTP {response.status_code}: {response.text[:300]}")
        return response

    def pay(
        self,
        out_trade_no: str | None = None,
        *,
        partner_trans_id: str | None = None,
        trade_no: str | None = None,
        buyer: str | None = None,
        url: str | None = None,
    ) -> Payment:
        """Pay a trade as a buyer would (``control/pay``): the trade is paid and its notification queued.

        Name the trade by ``out_trade_no``, ``partner_trans_id`` (in-store) or Alipay's ``trade_no``. With
        ``url`` (the page URL the shop sent the buyer to), the URL is visited first and the order number is
        taken from it. ``buyer`` is a seeded buyer's login, user id or barcode (default: the buyer who
        scanned, else ``buyer@alitest.com``). AlipayBusinessError (``TRADE_HAS_SUCCESS``, ``TRADE_NOT_EXIST``,
        buyer codes) when the emulator refuses.
        """
        order = out_trade_no or partner_trans_id
        if url is not None:
            self.visit(url)
            if order is None and trade_no is None:
                order = dict(parse_qsl(urlsplit(url).query)).get("out_trade_no")
        if order is None and trade_no is None:
            raise InvalidParameterError(
                "pay() needs out_trade_no, partner_trans_id, trade_no or url", parameter="out_trade_no"
            )
        data: dict[str, Any] = {"partner": self.partner}
        if order is not None:
            data["out_trade_no"] = order
        if trade_no is not None:
            data["trade_no"] = trade_no
        if buyer is not None:
            data["buyer"] = buyer
        answer = self.control("pay", data)
        return Payment(
            out_trade_no=str(answer["out_trade_no"]),
            trade_no=str(answer["trade_no"]),
            trade_status=str(answer["trade_status"]),
            buyer=answer.get("buyer"),
            return_url=answer.get("return_url"),
            raw=answer,
        )

    def set_clock(self, when: datetime | str | Clock | None) -> datetime:
        """Stand the emulator's business clock at ``when``; None or ``"real"`` frees it. Returns its time.

        ``when``: an aware datetime, Beijing text ``yyyy-MM-dd HH:mm:ss``, ISO-8601 with an offset, or a clock
        (its current time is taken: ``emulator.set_clock(alipay_clock)`` lines the two up).
        """
        if when is None or when == "real":
            now: str = "real"
        elif isinstance(when, datetime | str):
            now = parse_when(when).isoformat()
        else:
            now = protocol_clock.to_beijing(when.now()).isoformat()
        return datetime.fromisoformat(self.control("clock", {"now": now})["now"])

    def advance_clock(self, seconds: float) -> datetime:
        """Move the emulator clock forward ``seconds`` (a running clock first stops at the current time)."""
        return datetime.fromisoformat(self.control("clock", {"advance": seconds})["now"])

    def set_time_scale(self, scale: float) -> None:
        """Make durations (notification retries, notify_id lifetime, refund spacing) run faster."""
        self.control("clock", {"time_scale": scale})

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change run-time knobs: ``refund_interval``, ``notify_id_ttl``, ``retry_schedule``,
        ``timestamp_tolerance`` (None: no check), ``notify_timeout``, and the open-point knobs
        (``repeat_refund_answer``, ``notify_id_reuse``, ... see ``OPEN_POINT_KNOBS``). Returns them all."""
        answer: dict[str, Any] = self.control("config", knobs)
        return answer

    # --- faults -------------------------------------------------------------------------------------------

    def _apply_faults(self, plan: dict[str, Any] | None) -> dict[str, Any]:
        answer: dict[str, Any] = self.control("faults", plan or {})
        return answer

    def inject(self, *faults: Fault | Mapping[str, Any], seed: int | None = None) -> dict[str, Any]:
        """Add faults (see :mod:`django_alipay.testing.faults`) to the emulator's plan; returns the plan."""
        return self._faults.inject(*faults, seed=seed)

    def clear_faults(self) -> dict[str, Any]:
        """Remove every injected fault."""
        return self._faults.clear()

    def faults(self) -> dict[str, Any]:
        """The emulator's current fault plan, with how often each rule ``fired``."""
        answer: dict[str, Any] = self.control("faults")
        return answer

    @property
    def fault_injector(self) -> FaultInjector:
        """The injector behind :meth:`inject` and :meth:`clear_faults`."""
        return self._faults

    # --- notifications and logs ---------------------------------------------------------------------------

    def deliver(self) -> list[Delivery]:
        """Send every notification that is due now; returns the sends made."""
        answer = self.control("deliver", {})
        return [Delivery.from_json(item) for item in answer["deliveries"]]

    def notifications(
        self, out_trade_no: str | None = None, *, notify_type: str | None = None, deliver: bool = True
    ) -> list[Delivery]:
        """Every notification send so far for this partner (oldest first), optionally of one order or type.

        With ``deliver`` (the default) what is due is sent first, so a queued notification has its send (and
        its notify_id) to show. ``notify_type``: ``trade_status_sync`` or ``refund_status_sync``.
        """
        if deliver:
            self.deliver()
        query = {"partner": self.partner}
        if out_trade_no:
            query["out_trade_no"] = out_trade_no
        if notify_type:
            query["notify_type"] = notify_type
        answer = self.control("notifications", query, method="GET")
        return [Delivery.from_json(item) for item in answer["deliveries"]]

    def calls(self, service: str | None = None) -> list[dict[str, Any]]:
        """The gateway.do call log of this partner (oldest first), with the fault applied to each call."""
        query = {"partner": self.partner, **({"service": service} if service else {})}
        calls: list[dict[str, Any]] = self.control("calls", query, method="GET")["calls"]
        return calls

    def trades(self, out_trade_no: str | None = None) -> list[dict[str, Any]]:
        """The emulator's trades of this partner, newest first (status, amounts, buyer ...)."""
        query = {"partner": self.partner, **({"out_trade_no": out_trade_no} if out_trade_no else {})}
        found: list[dict[str, Any]] = self.control("trades", query, method="GET")["trades"]
        return found

    def reset(self) -> None:
        """Forget trades, refunds, notifications, calls, faults and the clock; the partner stays."""
        self.control("reset", {})
        self._faults = FaultInjector(self._apply_faults)

    # --- Django -------------------------------------------------------------------------------------------

    def merchant(
        self,
        *,
        sign_type: str = "MD5",
        charset: str = "utf-8",
        currency: str = "USD",
        name: str | None = None,
        **fields: Any,
    ) -> Merchant:
        """Create (or update) the django_alipay Merchant of this partner, pointed at this emulator.

        ``sign_type`` MD5 uses the MD5 key; RSA/RSA2 and DSA use the merchant key pair (so the emulator must
        have been started with ``merchant_key`` of that family) and the emulator's public key as Alipay's.
        Other Merchant fields may be passed. Needs database access (pytest-django's ``db`` fixture or a
        ``django_db`` mark).
        """
        from django_alipay.enums import Environment
        from django_alipay.models import Merchant

        kind = signing.normalize_sign_type(sign_type)
        values: dict[str, Any] = {
            "name": name or f"Emulator {self.partner}",
            "gateway_url": self.gateway_url,
            "sign_type": kind,
            "charset": signing.normalize_charset(charset),
            "currency": currency,
            "is_active": True,
        }
        if kind == "MD5":
            values["md5_key"] = self.md5_key
        else:
            family = "DSA" if kind == "DSA" else "RSA"
            if self.merchant_key != family:
                raise InvalidParameterError(
                    f"sign type {kind} needs an emulator started with merchant_key={family!r} "
                    f"(this one has {self.merchant_key!r})",
                    parameter="sign_type",
                )
            values |= {
                "private_key": self.merchant_private_key,
                "public_key": self.merchant_public_key,
                "alipay_public_key": self.alipay_public_keys[kind],
            }
        values.update(fields)
        merchant, _ = Merchant.objects.update_or_create(
            partner=self.partner, environment=Environment.EMULATOR, defaults=values
        )
        return merchant
