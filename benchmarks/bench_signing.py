"""Measure sign() and verify() against the raw hashlib / cryptography primitive on the same message.

Run from the repository root:  .venv/bin/python benchmarks/bench_signing.py [--rounds 7] [--min-time 0.2]

For each sign type the script times four things on one realistic notification (12 fields, a Chinese
subject, UTF-8):

* ours:     django_alipay.protocol.signing.sign / verify, given the key as PEM text (the cached path a
            settings-driven caller takes) and the parameter dict;
* raw:      the primitive alone on the already-built pre-sign bytes: hashlib.md5(presign + key) for MD5,
            cryptography's key.sign / key.verify with an already loaded key for RSA, RSA2 and DSA;
* minimal:  the least any correct implementation must do: a hand-written sorted join plus the primitive
            (and the Base64 step); it shows how much of the gap is the protocol itself, not this library.

A second table compares our verify() with python-alipay-sdk's ``AliPay.verify`` (when that package is
installed) on the same signed notification, the same key and the same pre-sign string, for the sign types
it implements (RSA and RSA2; it has no MD5 or DSA). The SDK is called the way its README shows: copy the
received dict, pop ``sign``, pass the rest and the signature (its verify pops ``sign_type`` itself, so each
call needs a fresh dict). Both are timed in the same interleaved rounds; ratio = time(sdk) / time(ours).

Each round times every variant with timeit, interleaved (the order alternates between rounds) so that
frequency scaling and noise hit all variants alike. ``--timer cpu`` counts the CPU time of the benchmark's
own thread instead of wall-clock time: on a machine busy with other work, the time the thread waits for a
CPU then counts for none of the variants. The ratio is throughput(ours) / throughput(raw) =
time(raw) / time(ours) per round; the table gives its median and min-max spread over the rounds.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from django_alipay.protocol import dsa, keys, signing

PARAMS: dict[str, str] = {
    "_input_charset": "utf-8",
    "currency": "USD",
    "notify_id": "5ac236e4cf7822d205cedcc252b54ebwg1",
    "notify_time": "2020-01-14 15:23:12",
    "notify_type": "trade_status_sync",
    "out_trade_no": "FALCN32YWXN2CL4KFT8",
    "subject": "测试订单 order 42",
    "total_fee": "108.00",
    "trade_no": "2020011421001003050502834160",
    "trade_status": "TRADE_FINISHED",
    "gmt_payment": "2020-01-14 15:23:11",
    "buyer_email": "cnb*@alitest.*",
}
MD5_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"


@dataclass
class Case:
    sign_type: str
    operation: str
    ours: Callable[[], object]
    raw: Callable[[], object]
    minimal: Callable[[], object]


def _minimal_presign(params: dict[str, str]) -> bytes:
    return "&".join(
        f"{k}={v}" for k, v in sorted(params.items()) if v and k not in ("sign", "sign_type")
    ).encode("utf-8")


def build_cases(rsa_bits: int = 2048) -> list[Case]:
    data = signing.presign_string(PARAMS).encode("utf-8")
    md5_key_bytes = MD5_KEY.encode("utf-8")
    cases: list[Case] = []

    md5_sign = signing.sign(PARAMS, sign_type="MD5", key=MD5_KEY)
    md5_signed = dict(PARAMS, sign=md5_sign, sign_type="MD5")
    md5_expected = md5_sign.encode("ascii")
    cases.append(
        Case(
            "MD5",
            "sign",
            lambda: signing.sign(PARAMS, sign_type="MD5", key=MD5_KEY),
            lambda: hashlib.md5(data + md5_key_bytes).hexdigest(),
            lambda: hashlib.md5(_minimal_presign(PARAMS) + md5_key_bytes).hexdigest(),
        )
    )
    cases.append(
        Case(
            "MD5",
            "verify",
            lambda: signing.verify(md5_signed, key=MD5_KEY),
            lambda: hmac.compare_digest(hashlib.md5(data + md5_key_bytes).hexdigest().encode(), md5_expected),
            lambda: hmac.compare_digest(
                hashlib.md5(_minimal_presign(md5_signed) + md5_key_bytes).hexdigest().encode(), md5_expected
            ),
        )
    )

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    dsa_key = dsa.generate(2048)
    for sign_type, private, algorithm in (
        ("RSA", rsa_key, hashes.SHA1()),  # noqa: S303 (the protocol prescribes SHA-1)
        ("RSA2", rsa_key, hashes.SHA256()),
        ("DSA", dsa_key, hashes.SHA1()),  # noqa: S303
    ):
        private_pem = keys.private_key_pem(private)
        public_pem = keys.public_key_pem(private)
        signature_text = signing.sign(PARAMS, sign_type=sign_type, key=private_pem)
        signed = dict(PARAMS, sign=signature_text, sign_type=sign_type)
        raw_sign, raw_verify = _primitives(private, algorithm)
        signature = base64.b64decode(signature_text)
        cases.append(
            Case(
                sign_type,
                "sign",
                lambda t=sign_type, k=private_pem: signing.sign(PARAMS, sign_type=t, key=k),
                lambda f=raw_sign: f(data),
                lambda f=raw_sign: base64.b64encode(f(_minimal_presign(PARAMS))).decode("ascii"),
            )
        )
        cases.append(
            Case(
                sign_type,
                "verify",
                lambda s=signed, k=public_pem: signing.verify(s, key=k),
                lambda f=raw_verify, sig=signature: f(sig, data),
                lambda f=raw_verify, s=signed: f(base64.b64decode(s["sign"]), _minimal_presign(s)),
            )
        )
    return cases


def _primitives(
    private: rsa.RSAPrivateKey | dsa.DSAPrivateKey, algorithm: hashes.HashAlgorithm
) -> tuple[Callable[[bytes], bytes], Callable[[bytes, bytes], bool]]:
    """The key object's own sign and verify (cryptography's, or the DSA backend's), the key already loaded."""
    public = private.public_key()
    if isinstance(private, rsa.RSAPrivateKey):
        assert isinstance(public, rsa.RSAPublicKey)
        pkcs1v15 = padding.PKCS1v15()

        def rsa_sign(message: bytes) -> bytes:
            return private.sign(message, pkcs1v15, algorithm)

        def rsa_verify(signature: bytes, message: bytes) -> bool:
            public.verify(signature, message, pkcs1v15, algorithm)
            return True

        return rsa_sign, rsa_verify
    assert isinstance(public, dsa.DSAPublicKey)

    def dsa_sign(message: bytes) -> bytes:
        return private.sign(message, algorithm)

    def dsa_verify(signature: bytes, message: bytes) -> bool:
        public.verify(signature, message, algorithm)
        return True

    return dsa_sign, dsa_verify


#: What ``_per_op`` times with: wall-clock time (the default) or the thread's CPU time (``--timer cpu``).
TIMERS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
_timer: Callable[[], float] = TIMERS["wall"]


def _per_op(function: Callable[[], object], number: int) -> float:
    return timeit.Timer(function, timer=_timer).timeit(number=number) / number


def measure(case: Case, rounds: int, min_time: float) -> dict[str, list[float]]:
    # Same loop count for all variants of a case, sized so the slowest (ours) runs about min_time.
    return measure_variants(
        [("ours", case.ours), ("raw", case.raw), ("minimal", case.minimal)], rounds, min_time, size_on="ours"
    )


def measure_variants(
    variants: list[tuple[str, Callable[[], object]]], rounds: int, min_time: float, *, size_on: str
) -> dict[str, list[float]]:
    """Seconds per call of each variant, per round; one loop count for all, the order alternating."""
    sizing = dict(variants)[size_on]
    number, _ = timeit.Timer(sizing).autorange()
    number = max(1, int(min_time / _per_op(sizing, number)))
    results: dict[str, list[float]] = {name: [] for name, _ in variants}
    for round_index in range(rounds):
        order = variants if round_index % 2 == 0 else list(reversed(variants))
        for name, function in order:
            results[name].append(_per_op(function, number))
    return results


@dataclass
class SdkCase:
    sign_type: str
    ours: Callable[[], object]
    sdk: Callable[[], object]


def build_sdk_cases(rsa_bits: int = 2048) -> list[SdkCase]:
    """Our verify and python-alipay-sdk's on one signed notification; empty when the SDK is missing."""
    try:
        from alipay import AliPay  # python-alipay-sdk
    except ImportError:
        return []
    private = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    private_pem = keys.private_key_pem(private)
    public_pem = keys.public_key_pem(private)
    cases = []
    for sign_type in ("RSA", "RSA2"):
        signed = dict(
            PARAMS, sign=signing.sign(PARAMS, sign_type=sign_type, key=private_pem), sign_type=sign_type
        )
        sdk = AliPay(
            appid="2021000000000000",
            app_notify_url=None,
            app_private_key_string=private_pem,
            alipay_public_key_string=public_pem,
            sign_type=sign_type,
        )

        def theirs(signed: dict[str, str] = signed, sdk: AliPay = sdk) -> bool:
            data = dict(signed)
            signature = data.pop("sign")
            return bool(sdk.verify(data, signature))

        def ours(signed: dict[str, str] = signed) -> bool:
            return signing.verify(signed, key=public_pem)

        # Same message: the SDK joins the sorted remaining items; with no empty value that is our pre-sign.
        unsigned = {k: v for k, v in signed.items() if k not in ("sign", "sign_type")}
        assert "&".join(f"{k}={v}" for k, v in sorted(unsigned.items())) == signing.presign_string(signed)
        assert ours(), "ours must accept the genuine notification"
        assert theirs(), "the SDK must accept the genuine notification"
        tampered = dict(signed, total_fee="1.00")
        assert not signing.verify(tampered, key=public_pem)
        data = dict(tampered)
        assert not sdk.verify(data, data.pop("sign")), "both must refuse a changed one"
        cases.append(SdkCase(sign_type, ours, theirs))
    return cases


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per variant per round")
    parser.add_argument(
        "--rsa-bits", type=int, default=2048, help="RSA key size (Alipay's legacy keys: 1024)"
    )
    parser.add_argument("--sdk-only", action="store_true", help="only the python-alipay-sdk comparison")
    parser.add_argument("--no-sdk", action="store_true", help="skip the python-alipay-sdk comparison")
    parser.add_argument(
        "--timer", choices=sorted(TIMERS), default="wall", help="wall-clock time, or this thread's CPU time"
    )
    args = parser.parse_args()
    global _timer
    _timer = TIMERS[args.timer]

    print(
        f"# sign/verify benchmark — {datetime.date.today().isoformat()}, Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}, {os.cpu_count()} CPUs ({cpu_model()})\n"
    )
    print(
        f"{args.rounds} interleaved rounds, {args.timer} time; RSA {args.rsa_bits}-bit and DSA 2048-bit "
        "keys; ratio = throughput of ours / throughput of the raw primitive.\n"
    )
    if not args.sdk_only:
        primitives_table(args)
    if not args.no_sdk:
        sdk_table(args)


def sdk_table(args: argparse.Namespace) -> None:
    cases = build_sdk_cases(args.rsa_bits)
    if not cases:
        print("\npython-alipay-sdk is not installed: `.venv/bin/pip install python-alipay-sdk` to compare.")
        return
    from importlib.metadata import version

    print(
        f"\nversus python-alipay-sdk {version('python-alipay-sdk')} (pycryptodomex "
        f"{version('pycryptodomex')}), RSA {args.rsa_bits}-bit; ratio = time(sdk) / time(ours).\n"
    )
    print("| sign type | ours µs/op | python-alipay-sdk µs/op | sdk/ours median | sdk/ours min–max |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        results = measure_variants(
            [("ours", case.ours), ("sdk", case.sdk)], args.rounds, args.min_time, size_on="sdk"
        )
        ratios = [sdk / ours for sdk, ours in zip(results["sdk"], results["ours"], strict=True)]
        print(
            f"| {case.sign_type} | {statistics.median(results['ours']) * 1e6:.2f} "
            f"| {statistics.median(results['sdk']) * 1e6:.2f} "
            f"| {statistics.median(ratios):.2f}x | {min(ratios):.2f}–{max(ratios):.2f} |",
            flush=True,
        )


def primitives_table(args: argparse.Namespace) -> None:
    print(
        "| sign type | op | ours µs/op | raw µs/op | minimal µs/op | ours/raw median | ours/raw min–max "
        "| ours/minimal median |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in build_cases(args.rsa_bits):
        results = measure(case, args.rounds, args.min_time)
        ratios = [raw / ours for raw, ours in zip(results["raw"], results["ours"], strict=True)]
        minimal_ratios = [m / ours for m, ours in zip(results["minimal"], results["ours"], strict=True)]
        print(
            f"| {case.sign_type} | {case.operation} "
            f"| {statistics.median(results['ours']) * 1e6:.2f} "
            f"| {statistics.median(results['raw']) * 1e6:.2f} "
            f"| {statistics.median(results['minimal']) * 1e6:.2f} "
            f"| {statistics.median(ratios):.2f}x | {min(ratios):.2f}–{max(ratios):.2f} "
            f"| {statistics.median(minimal_ratios):.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
