"""gateway.do checks in the documented order: service, partner, sign type, sign, contract, charset, args."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from .conftest import EmulatorProcess, Merchant, new_id
from .signer import parse_envelope, sign

QUERY = "single_trade_query"


def _raw(emu: EmulatorProcess, params: dict[str, str]) -> str | None:
    response = requests.get(f"{emu.gateway}?{urlencode(params)}", timeout=30)
    envelope = parse_envelope(response.content)
    assert not envelope.is_success
    assert envelope.sign is None
    return envelope.error


def test_unknown_service_comes_first_even_with_bad_partner_and_signature(emu: EmulatorProcess) -> None:
    params = {"service": "no_such_service", "partner": "2088000000000000", "sign_type": "XYZ", "sign": "bad"}
    assert _raw(emu, params) == "ILLEGAL_SERVICE"
    assert _raw(emu, {"partner": "2088000000000000"}) == "ILLEGAL_SERVICE"


def test_unknown_partner_comes_before_sign_type_and_signature(emu: EmulatorProcess) -> None:
    params = {
        "service": QUERY,
        "partner": "2088999999999999",
        "sign_type": "XYZ",
        "sign": "bad",
        "out_trade_no": "1",
    }
    assert _raw(emu, params) == "ILLEGAL_PARTNER"
    assert _raw(emu, {"service": QUERY, "out_trade_no": "1"}) == "ILLEGAL_PARTNER"


def test_sign_type_not_allowed_for_partner_even_with_a_correct_signature(
    emu: EmulatorProcess, rsa_key
) -> None:
    merchant = emu.merchant(private_key=rsa_key, sign_types=["RSA2"])
    # The partner has an MD5 key, but only RSA2 is allowed for it.
    assert merchant.error(QUERY, {"out_trade_no": "1"}, sign_type="MD5") == "ILLEGAL_SIGN_TYPE"
    assert merchant.error(QUERY, {"out_trade_no": "1"}, sign_type="RSA") == "ILLEGAL_SIGN_TYPE"
    assert merchant.error(QUERY, {"out_trade_no": "1"}, sign_type="RSA2") == "TRADE_NOT_EXIST"


def test_sign_type_missing_or_lowercase_is_refused(merchant: Merchant) -> None:
    params = merchant.build(QUERY, {"out_trade_no": "1"})
    del params["sign_type"]
    assert parse_envelope(merchant.send(params).content).error == "ILLEGAL_SIGN_TYPE"
    params["sign_type"] = "md5"
    assert parse_envelope(merchant.send(params).content).error == "ILLEGAL_SIGN_TYPE"


def test_bad_signature_comes_before_the_contract_check(emu: EmulatorProcess) -> None:
    merchant = emu.merchant(services=["alipay.acquire.overseas.query"])
    params = merchant.build(QUERY, {"out_trade_no": "1"})
    params["sign"] = "0" * 32
    assert parse_envelope(merchant.send(params).content).error == "ILLEGAL_SIGN"
    del params["sign"]
    assert parse_envelope(merchant.send(params).content).error == "ILLEGAL_SIGN"


def test_uncontracted_service_with_a_good_signature(emu: EmulatorProcess) -> None:
    merchant = emu.merchant(services=["alipay.acquire.overseas.query"])
    assert merchant.error(QUERY, {"out_trade_no": "1"}) == "ILLEGAL_PARTNER_EXTERFACE"
    fields = merchant.ok("alipay.acquire.overseas.query", {"partner_trans_id": "1"})
    assert fields["error"] == "TRANS_NOT_FOUND"


def test_contract_comes_before_charset_and_charset_before_arguments(emu: EmulatorProcess) -> None:
    contracted = emu.merchant(services=["alipay.acquire.overseas.query"])
    # An unsupported charset, but a correct signature over ASCII data.
    params = contracted.build(QUERY, {"out_trade_no": "1"}, charset="big5")
    assert (
        parse_envelope(contracted.send(params, charset="ascii").content).error == "ILLEGAL_PARTNER_EXTERFACE"
    )
    merchant = emu.merchant()
    params = merchant.build(QUERY, {}, charset="big5")
    assert parse_envelope(merchant.send(params, charset="ascii").content).error == "ILLEGAL_CHARSET"
    assert merchant.error(QUERY, {}) == "ILLEGAL_ARGUMENT"


def test_bad_signature_comes_before_charset(merchant: Merchant) -> None:
    params = merchant.build(QUERY, {"out_trade_no": "1"}, charset="big5")
    params["sign"] = "f" * 32
    assert parse_envelope(merchant.send(params, charset="ascii").content).error == "ILLEGAL_SIGN"


def test_a_parameter_given_twice_with_different_values_is_refused(merchant: Merchant) -> None:
    params = merchant.build(QUERY, {"out_trade_no": "A"})
    url = f"{merchant.emu.gateway}?{urlencode(params)}&out_trade_no=B"
    envelope = parse_envelope(requests.get(url, timeout=30).content)
    assert envelope.error == "ILLEGAL_ARGUMENT"
    # The same value twice is harmless.
    url = f"{merchant.emu.gateway}?{urlencode(params)}&out_trade_no=A"
    assert parse_envelope(requests.get(url, timeout=30).content).error == "TRADE_NOT_EXIST"


def test_post_with_charset_in_the_url_merges_url_and_body(merchant: Merchant) -> None:
    out_trade_no, _ = merchant.online_trade()
    fields = merchant.ok(QUERY, {"out_trade_no": out_trade_no}, method="POST")
    assert fields["out_trade_no"] == out_trade_no


def test_post_with_everything_in_the_body(merchant: Merchant) -> None:
    out_trade_no, _ = merchant.online_trade()
    params = merchant.build(QUERY, {"out_trade_no": out_trade_no})
    response = requests.post(merchant.emu.gateway, data=params, timeout=30)
    assert parse_envelope(response.content).fields["out_trade_no"] == out_trade_no


def test_empty_parameters_are_left_out_of_the_signature(merchant: Merchant) -> None:
    params = {"service": QUERY, "partner": merchant.partner, "_input_charset": "utf-8", "out_trade_no": "X1"}
    params["sign"] = sign(params, "MD5", merchant.md5_key)
    params.update(sign_type="MD5", trade_no="")
    assert parse_envelope(merchant.send(params).content).error == "TRADE_NOT_EXIST"


def test_success_echoes_the_request_without_sign(merchant: Merchant) -> None:
    out_trade_no, _ = merchant.online_trade()
    envelope = merchant.xml(QUERY, {"out_trade_no": out_trade_no})
    assert envelope.is_success
    assert envelope.element == "trade"
    assert envelope.request == {
        "service": QUERY,
        "partner": merchant.partner,
        "_input_charset": "utf-8",
        "out_trade_no": out_trade_no,
    }


# Golden vectors: published/recomputed signatures, sent verbatim.
GOLDEN = [
    (
        "1000000000000000",
        "10000000000000000000000000000000",
        {
            "service": "alipay.acquire.overseas.query",
            "_input_charset": "utf-8",
            "partner": "1000000000000000",
            "partner_trans_id": "2010121000000002",
            "sign_type": "MD5",
            "sign": "2a7f598bbb13d02f7de819ae689f80ba",
        },
        {"TRANS_NOT_FOUND"},
    ),
    (
        "2088101122136241",
        "760bdzec6y9goq7ctyx96ezkz78287de",
        {
            "service": "single_trade_query",
            "partner": "2088101122136241",
            "_input_charset": "utf-8",
            "out_trade_no": "T1",
            "trade_no": "",
            "sign_type": "MD5",
            "sign": "24abffa396b6400f48346fddf4f1c9f0",
        },
        # T1 may exist already (test_charsets creates it with the UTF-8 Chinese vector): both mean accepted.
        {"TRADE_NOT_EXIST", "T"},
    ),
]


@pytest.mark.parametrize(("partner", "key", "params", "expected"), GOLDEN)
def test_golden_vectors_are_accepted(
    emu: EmulatorProcess, partner: str, key: str, params: dict, expected: set
) -> None:
    emu.control("partners", {"partner": partner, "md5_key": key})
    envelope = parse_envelope(requests.get(f"{emu.gateway}?{urlencode(params)}", timeout=30).content)
    outcome = envelope.error or envelope.fields.get("error") or "T"
    assert outcome in expected


def test_a_golden_vector_with_one_character_changed_is_refused(emu: EmulatorProcess) -> None:
    partner, key, params, _ = GOLDEN[1]
    emu.control("partners", {"partner": partner, "md5_key": key})
    changed = {**params, "out_trade_no": "T2"}
    envelope = parse_envelope(requests.get(f"{emu.gateway}?{urlencode(changed)}", timeout=30).content)
    assert envelope.error == "ILLEGAL_SIGN"


def test_rsa_rsa2_and_dsa_requests_and_signed_answers(emu: EmulatorProcess, rsa_key, dsa_key) -> None:
    rsa_merchant = emu.merchant(private_key=rsa_key)
    out_trade_no, _ = rsa_merchant.online_trade()
    for sign_type in ("RSA", "RSA2", "MD5"):
        # Merchant.ok verifies the answer with the emulator's published key (SHA-1 / SHA-256) or the MD5 key.
        assert rsa_merchant.ok(QUERY, {"out_trade_no": out_trade_no}, sign_type=sign_type)["trade_status"]
    dsa_merchant = emu.merchant(private_key=dsa_key, md5_key=None)
    out_trade_no = new_id()
    fields = dsa_merchant.ok(
        "alipay.acquire.overseas.query", {"partner_trans_id": out_trade_no}, sign_type="DSA"
    )
    assert fields["error"] == "TRANS_NOT_FOUND"
    assert dsa_merchant.error(QUERY, {"out_trade_no": "1"}, sign_type="RSA2") == "ILLEGAL_SIGN_TYPE"


def test_an_rsa_signature_made_with_another_key_is_refused(emu: EmulatorProcess, rsa_key) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    merchant = emu.merchant(private_key=rsa_key)
    impostor = Merchant(
        emu, merchant.partner, "", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    assert impostor.error(QUERY, {"out_trade_no": "1"}, sign_type="RSA2") == "ILLEGAL_SIGN"
