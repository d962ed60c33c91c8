"""Write the seed corpus of the two fuzz harnesses (fuzz/corpus/), deterministically, from readable cases.

Run from the repository root:  .venv/bin/python fuzz/make_corpus.py
Each seed is the harness's input layout (see the harness docstrings): framing bytes, then the payload.
Seeds are signed with SEED_MD5_KEY, which the harnesses do not verify with: they reach the signature check
and fail it, which is the deepest a raw input can go.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_alipay.protocol import envelope, signing

HERE = Path(__file__).resolve().parent
SEED_MD5_KEY = "seedkey0000000000000000000000000"
# A fixed Base64 string of RSA-2048 signature length: well-formed, verifies with no key.
FAKE_RSA_SIGN = base64.b64encode(b"".join(hashlib.sha512(bytes([i])).digest() for i in range(4))).decode()

NOTIFY = {
    "notify_id": "5ac236e4cf7822d205cedcc252b54ebwg1",
    "notify_type": "trade_status_sync",
    "notify_time": "2024-05-01 15:23:12",
    "out_trade_no": "ORDER-42",
    "trade_no": "2024050121001003050502834160",
    "trade_status": "TRADE_FINISHED",
    "total_fee": "108.00",
    "currency": "USD",
    "subject": "测试订单 order 42",
    "gmt_payment": "2024-05-01 15:23:11",
    "buyer_email": "cnb*@alitest.*",
}
REFUND_NOTIFY = {
    "notify_id": "8c8f0a3e1d6b4c7a9e2f5b1c3d4e6f70ab",
    "notify_type": "trade_status_sync",
    "notify_time": "2024-05-02 10:00:00",
    "out_trade_no": "ORDER-42",
    "out_return_no": "RF20240502ABCDEF0123456789",
    "return_amount": "8.00",
    "currency": "USD",
    "refund_status": "REFUND_SUCCESS",
    "gmt_return": "20240502100000",
}


def signed_form(params: dict[str, str], *, sign_type: str = "MD5", charset: str = "utf-8") -> bytes:
    if sign_type == "MD5":
        sign = signing.sign(params, sign_type="MD5", key=SEED_MD5_KEY, charset=charset)
    else:
        sign = FAKE_RSA_SIGN
    return urlencode({**params, "sign": sign, "sign_type": sign_type}, encoding=charset).encode("ascii")


def notification_raw(
    body: bytes,
    *,
    content_type: int = 0,
    charset: int = 1,
    keys: int = 0,
    options: int = 0,
    query: bytes = b"",
) -> bytes:
    flags = content_type | charset << 3 | keys << 5
    return bytes([flags, options, len(query)]) + query + body


def lines(fields: dict[str, str]) -> bytes:
    return "\n".join(f"{k}={v}" for k, v in fields.items()).encode("utf-8")


def notification_seeds() -> dict[str, bytes]:
    gbk = {**NOTIFY, "_input_charset": "gbk"}
    ret = {k: v for k, v in NOTIFY.items() if k not in ("notify_id", "notify_type", "notify_time")}
    return {
        "md5_utf8_default_gbk": notification_raw(signed_form(NOTIFY)),
        "md5_declared_gbk": notification_raw(signed_form(gbk, charset="gbk")),
        "md5_refund": notification_raw(signed_form(REFUND_NOTIFY), charset=0),
        "rsa2_rotation": notification_raw(signed_form(NOTIFY, sign_type="RSA2"), keys=1, charset=0),
        "mapping_rsa": notification_raw(signed_form(NOTIFY, sign_type="RSA"), keys=2, charset=0),
        "downgrade_md5": notification_raw(signed_form(NOTIFY), keys=3),
        "return_url_query": notification_raw(b"", content_type=3, options=0x21, query=signed_form(ret)[:255]),
        "query_plus_body": notification_raw(signed_form(NOTIFY), query=b"sign_type=MD5&extra=1"),
        "duplicate_sign": notification_raw(signed_form(NOTIFY) + b"&sign=" + b"0" * 32),
        "nul_percent": notification_raw(b"a=%00&" + signed_form(NOTIFY)),
        "lowercase_md5": notification_raw(signed_form(NOTIFY).replace(b"sign_type=MD5", b"sign_type=md5")),
        "bad_charset_decl": notification_raw(b"_input_charset=latin1&" + signed_form(NOTIFY)),
        "bad_gbk_bytes": notification_raw(b"subject=%FF%FF&" + signed_form(NOTIFY), charset=1),
        "many_fields_small_cap": notification_raw(b"&".join(b"f%d=1" % i for i in range(10)), options=0x06),
        "plus_and_percent": notification_raw(b"a+b=c%2Bd&e=%25252F&" + signed_form(NOTIFY)),
        "charset_override": notification_raw(signed_form(gbk, charset="gbk"), options=0x18),
        "signed_round_trip_utf8_md5": bytes([0x80, 0x05, 0]) + lines(NOTIFY),
        "signed_round_trip_gbk_rsa2": bytes([0x80 | 0x01 | 0x0C, 0x00, 0]) + lines(NOTIFY),
        "signed_round_trip_gb2312_rsa": bytes([0x80 | 0x02 | 0x08, 0x03, 0]) + lines(REFUND_NOTIFY),
    }


def envelope_seeds() -> dict[str, bytes]:
    trade = {
        "out_trade_no": "ORDER-42",
        "trade_no": "2024050121001003050502834160",
        "trade_status": "TRADE_SUCCESS",
        "total_fee": "108.00",
        "subject": "测试订单",
    }
    signed = envelope.render_response(
        is_success=True,
        request={"service": "single_trade_query", "out_trade_no": "ORDER-42"},
        response_element="trade",
        fields=trade,
        sign_type="MD5",
        key=SEED_MD5_KEY,
    )
    gbk = envelope.render_response(
        is_success=True,
        response_element="alipay",
        fields=trade,
        sign_type="MD5",
        key=SEED_MD5_KEY,
        charset="gbk",
    )
    spot = envelope.render_response(
        is_success=True,
        response_element="alipay",
        fields={"result_code": "SUCCESS", "partner_trans_id": "ORDER-42", "refund_amount": "1.00"},
    ).replace(b"</alipay></response>", b"</alipay></response><sign>" + FAKE_RSA_SIGN.encode() + b"</sign>")
    refused = envelope.render_response(is_success=False, error="ILLEGAL_SIGN")
    return {
        "signed_trade_md5": bytes([1]) + signed,
        "signed_trade_nokey": bytes([0]) + signed,
        "gbk_declared": bytes([1]) + gbk,
        "rsa2_forced": bytes([2]) + spot,
        "rsa_rotation": bytes([3]) + spot.replace(b"</alipay>", b"<sign_type>RSA2</sign_type></alipay>"),
        "small_cap": bytes([4]) + signed,
        "refused": bytes([0]) + refused,
        "html": bytes([0]) + b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
        "dtd_bomb": bytes([0])
        + b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]>'
        + b"<alipay>&y;</alipay>",
        "xxe": bytes([1])
        + b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><alipay>&e;</alipay>',
        "truncated": bytes([1]) + signed[: len(signed) // 2],
        "bom_utf8": bytes([1]) + b"\xef\xbb\xbf" + signed,
        "bom_gbk": bytes([1]) + b"\xef\xbb\xbf" + gbk,
        "nested": bytes([1]) + signed.replace(b"<total_fee>", b"<total_fee><x>1</x>"),
        "duplicate_field": bytes([1])
        + signed.replace(b"</trade>", b"<trade_status>TRADE_CLOSED</trade_status></trade>"),
        "latin1_declared": bytes([0]) + b'<?xml version="1.0" encoding="ISO-8859-1"?><alipay></alipay>',
        "signed_round_trip_md5": bytes([0x80]) + lines(trade),
        "signed_round_trip_rsa2_gbk": bytes([0x80 | 0x04 | 0x01 | 0x08]) + lines(trade),
    }


def main() -> None:
    for harness, seeds in (("notifications", notification_seeds()), ("envelope", envelope_seeds())):
        folder = HERE / "corpus" / harness
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / f"{name}.bin").write_bytes(data)
        print(f"{folder.relative_to(HERE.parent)}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
