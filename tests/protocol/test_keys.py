"""Loading keys in every shape merchants paste them, refusing wrong ones helpfully, and the key helpers."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import textwrap

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from django_alipay.protocol import dsa, keys, signing
from django_alipay.protocol.errors import InvalidParameterError, KeyFormatError
from tests.protocol.data import base64_body, key_a_private_der, key_a_public_der, key_text

KEY_A_ONE_LINE = key_text("key_a_pkcs8_one_line.txt")
KEY_A_PUBLIC_ONE_LINE = key_text("key_a_public_one_line.txt")
# Key A's fingerprint computed straight from the DER openssl wrote, not through the library.
KEY_A_FINGERPRINT = "SHA256:" + hashlib.sha256(key_a_public_der()).hexdigest()


def _fingerprint_of(key: object) -> str:
    assert isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey | dsa.DSAPrivateKey | dsa.DSAPublicKey)
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + hashlib.sha256(der).hexdigest()


PRIVATE_SHAPES = {
    "pkcs8 pem": key_text("key_a_pkcs8.pem"),
    "pkcs1 pem": key_text("key_a_pkcs1.pem"),
    "pkcs8 pem on one line": key_text("key_a_pkcs8_squashed.pem"),
    "pkcs1 pem on one line": key_text("key_a_pkcs1.pem").replace("\n", ""),
    "pkcs1 pem, body on one line": "-----BEGIN RSA PRIVATE KEY-----\n"
    + base64_body(key_text("key_a_pkcs1.pem"))
    + "\n-----END RSA PRIVATE KEY-----\n",
    "base64 der on one line": KEY_A_ONE_LINE,
    "base64 der wrapped at 64": "\n".join(textwrap.wrap(KEY_A_ONE_LINE, 64)),
    "base64 der with spaces and tabs": " ".join(textwrap.wrap(KEY_A_ONE_LINE, 40)).replace(" ", " \t "),
    "base64 pkcs1 der": base64_body(key_text("key_a_pkcs1.pem")),
    "base64 der lost its padding": KEY_A_ONE_LINE.rstrip("="),
    "der bytes": key_a_private_der(),
    "der bytearray": bytearray(key_a_private_der()),
    "pem bytes": key_text("key_a_pkcs8.pem").encode("ascii"),
    "base64 bytes": KEY_A_ONE_LINE.encode("ascii"),
    "windows line endings": key_text("key_a_pkcs1.pem").replace("\n", "\r\n"),
    "surrounding whitespace": "\n  \t" + key_text("key_a_pkcs8.pem") + "\n\n  ",
    "byte order mark": "\ufeff" + key_text("key_a_pkcs8.pem"),
    "literal backslash-n from an env file": key_text("key_a_pkcs8.pem").replace("\n", "\\n"),
    "text around the block": "Bag Attributes: none\n" + key_text("key_a_pkcs8.pem") + "trailing note\n",
}

PUBLIC_SHAPES = {
    "spki pem": key_text("key_a_public.pem"),
    "pkcs1 pem": key_text("key_a_public_pkcs1.pem"),
    "spki pem on one line": key_text("key_a_public_squashed.pem"),
    "pkcs1 pem on one line": key_text("key_a_public_pkcs1.pem").replace("\n", ""),
    "base64 der on one line": KEY_A_PUBLIC_ONE_LINE,
    "base64 der wrapped": "\n".join(textwrap.wrap(KEY_A_PUBLIC_ONE_LINE, 64)) + "\n",
    "base64 pkcs1 der": base64_body(key_text("key_a_public_pkcs1.pem")),
    "der bytes": key_a_public_der(),
    "windows line endings": key_text("key_a_public.pem").replace("\n", "\r\n"),
    "surrounding whitespace": "   " + key_text("key_a_public.pem") + "\n\n",
    "x509 certificate pem": key_text("key_a_certificate.pem"),
    "x509 certificate der": base64.b64decode(base64_body(key_text("key_a_certificate.pem"))),
}


@pytest.mark.parametrize("shape", list(PRIVATE_SHAPES), ids=str)
def test_private_key_loads_from_every_shape(shape):
    key = keys.load_private_key(PRIVATE_SHAPES[shape])
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 1024
    assert _fingerprint_of(key) == KEY_A_FINGERPRINT


@pytest.mark.parametrize("shape", list(PUBLIC_SHAPES), ids=str)
def test_public_key_loads_from_every_shape(shape):
    key = keys.load_public_key(PUBLIC_SHAPES[shape])
    assert isinstance(key, rsa.RSAPublicKey)
    assert _fingerprint_of(key) == KEY_A_FINGERPRINT


def test_alipay_guide_sample_public_key_on_one_line_loads():
    key = keys.load_public_key(key_text("alipay_doc_public_key_squashed.pem"))
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 1024


@pytest.mark.parametrize("name", ["dsa_2048_private.pem", "dsa_2048_private_traditional.pem"])
def test_dsa_private_key_loads_in_pkcs8_and_traditional_form(name):
    key = keys.load_private_key(key_text(name))
    assert isinstance(key, dsa.DSAPrivateKey)
    assert keys.is_key_pair(key, key_text("dsa_2048_public.pem"))


def test_dsa_public_key_loads():
    assert isinstance(keys.load_public_key(key_text("dsa_2048_public.pem")), dsa.DSAPublicKey)


def test_loaded_key_objects_pass_through():
    private = keys.load_private_key(PRIVATE_SHAPES["pkcs8 pem"])
    public = private.public_key()
    assert keys.load_private_key(private) is private
    assert keys.load_public_key(public) is public


def test_repeated_loads_of_the_same_text_are_cached():
    text = key_text("key_a_public.pem")
    assert keys.load_public_key(text) is keys.load_public_key(str(text))
    assert keys.load_private_key(KEY_A_ONE_LINE) is keys.load_private_key(KEY_A_ONE_LINE)


# --------------------------------------------------------------------------------------- refusals


def _assert_no_material(message: str, material: str | bytes) -> None:
    """No 12-character run of the key's Base64 (or of its DER, hex) appears in the message."""
    if isinstance(material, bytes):
        body = base64.b64encode(material).decode("ascii")
        assert material.hex()[:24] not in message
    else:
        body = base64_body(material)
    for start in range(0, len(body) - 11, 4):
        assert body[start : start + 12] not in message


EXPECTED_PRIVATE = (
    "expected a private key (PKCS#8 'BEGIN PRIVATE KEY' or PKCS#1 'BEGIN RSA PRIVATE KEY', or its Base64 DER "
    "on one line)"
)


def test_public_key_where_a_private_key_belongs_names_both():
    material = key_text("key_a_public.pem")
    with pytest.raises(KeyFormatError) as info:
        keys.load_private_key(material)
    assert str(info.value) == f"{EXPECTED_PRIVATE} but found a public key (BEGIN PUBLIC KEY)"
    _assert_no_material(str(info.value), material)


def test_public_key_as_base64_where_a_private_key_belongs():
    with pytest.raises(
        KeyFormatError, match=r"expected a private key .* but found a public key \(Base64 DER\)"
    ):
        keys.load_private_key(KEY_A_PUBLIC_ONE_LINE)


@pytest.mark.parametrize("name", ["key_a_pkcs8.pem", "key_a_pkcs1.pem", "key_a_pkcs8_one_line.txt"])
def test_private_key_where_a_public_key_belongs_names_both(name):
    material = key_text(name)
    with pytest.raises(KeyFormatError) as info:
        keys.load_public_key(material)
    message = str(info.value)
    assert message.startswith("expected a public key")
    assert "but found a private key" in message
    _assert_no_material(message, material)


def test_certificate_where_a_private_key_belongs():
    with pytest.raises(KeyFormatError, match="found a certificate"):
        keys.load_private_key(key_text("key_a_certificate.pem"))


@pytest.mark.parametrize("loader", [keys.load_private_key, keys.load_public_key])
@pytest.mark.parametrize(
    "md5_key",
    [
        "760bdzec6y9goq7ctyx96ezkz78287de",
        "10000000000000000000000000000000",
        " ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\n",
    ],
)
def test_md5_key_given_as_an_rsa_key_is_recognised(loader, md5_key):
    with pytest.raises(KeyFormatError) as info:
        loader(md5_key)
    assert "this looks like an MD5 key (32 letters and digits), not an RSA/DSA key" in str(info.value)
    assert md5_key.strip() not in str(info.value)


@pytest.mark.parametrize(
    "name", ["ec_p256_private.pem", "ec_p256_private_sec1.pem", "ec_p256_public.pem"], ids=str
)
@pytest.mark.parametrize("loader", [keys.load_private_key, keys.load_public_key])
def test_ec_keys_are_refused(loader, name):
    material = key_text(name)
    with pytest.raises(KeyFormatError) as info:
        loader(material)
    assert "Alipay mapi accepts RSA or DSA keys; found an EC key" in str(info.value)
    _assert_no_material(str(info.value), material)


@pytest.mark.parametrize("name", ["ed25519_private.pem", "ed25519_public.pem"])
def test_ed25519_keys_are_refused(name):
    loader = keys.load_private_key if "private" in name else keys.load_public_key
    with pytest.raises(KeyFormatError, match="Alipay mapi accepts RSA or DSA keys; found an Ed25519 key"):
        loader(key_text(name))


def test_ec_and_ed25519_key_objects_are_refused():
    with pytest.raises(KeyFormatError, match="found an EC key"):
        keys.load_private_key(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeyFormatError, match="found an Ed25519 key"):
        keys.load_public_key(ed25519.Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize("name", ["key_a_encrypted_pkcs8.pem", "key_a_encrypted_pkcs1.pem"])
def test_encrypted_private_keys_are_refused_with_advice(name):
    material = key_text(name)
    with pytest.raises(KeyFormatError) as info:
        keys.load_private_key(material)
    message = str(info.value)
    assert "encrypted private key" in message
    assert "unencrypted" in message
    _assert_no_material(message, material)


def test_encrypted_private_key_as_bare_base64_is_refused():
    material = base64_body(key_text("key_a_encrypted_pkcs8.pem"))
    with pytest.raises(KeyFormatError, match="encrypted private key"):
        keys.load_private_key(material)


def test_encrypted_private_key_as_der_bytes_is_refused():
    material = base64.b64decode(base64_body(key_text("key_a_encrypted_pkcs8.pem")))
    with pytest.raises(KeyFormatError, match=r"found an encrypted private key \(DER bytes\)"):
        keys.load_private_key(material)


def test_too_short_rsa_key_is_refused():
    with pytest.raises(KeyFormatError, match="at least 1024 bits but found a 512-bit RSA key"):
        keys.load_private_key(key_text("rsa_512_private.pem"))


GARBAGE = {
    "empty": "",
    "whitespace": "   \n\t ",
    "prose": "please paste the key here",
    "not base64": "MIIC@@@@!!!!",
    "base64 of nothing useful": base64.b64encode(b"hello world, not a key").decode(),
    "random bytes": b"\xff\xfe\x00\x01binary",
    "der-looking junk": b"\x30\x82\x01\x00" + b"\x00" * 20,
    "truncated pem": key_text("key_a_pkcs8.pem")[:300],
    "pem missing its end line": key_text("key_a_pkcs8.pem").split("-----END")[0],
    "pem body truncated": key_text("key_a_pkcs8.pem")[:200] + "\n-----END PRIVATE KEY-----\n",
    "mismatched labels": key_text("key_a_pkcs8.pem").replace("END PRIVATE KEY", "END PUBLIC KEY"),
    "two keys": key_text("key_a_pkcs8.pem") + key_text("key_a_public.pem"),
    "empty pem": "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----",
    "unknown label": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----",
    "openssh": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----",
    "one character off in the der": KEY_A_ONE_LINE[:40]
    + ("A" if KEY_A_ONE_LINE[40] != "A" else "B")
    + KEY_A_ONE_LINE[41:],
    "non-ascii": "ключ",
}


@pytest.mark.parametrize("loader", [keys.load_private_key, keys.load_public_key])
@pytest.mark.parametrize("case", list(GARBAGE), ids=str)
def test_garbage_is_a_key_format_error_with_an_expectation(loader, case):
    material = GARBAGE[case]
    with pytest.raises(KeyFormatError) as info:
        loader(material)
    message = str(info.value)
    assert message.startswith("expected a ")
    _assert_no_material(message, material)


_LABELS = st.sampled_from(["PUBLIC KEY", "PRIVATE KEY", "RSA PRIVATE KEY", "RSA PUBLIC KEY", "CERTIFICATE"])


@settings(max_examples=80, deadline=None)
@given(
    material=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.binary(min_size=1, max_size=300).map(lambda b: base64.b64encode(b).decode("ascii")),
        st.tuples(_LABELS, st.binary(max_size=300)).map(
            lambda t: f"-----BEGIN {t[0]}-----\n{base64.b64encode(t[1]).decode()}\n-----END {t[0]}-----"
        ),
        # Key A's DER with one byte changed: structurally close to a real key.
        st.tuples(st.integers(0, 10_000), st.integers(1, 255)).map(
            lambda t: bytes(
                b ^ t[1] if i == t[0] % len(key_a_private_der()) else b
                for i, b in enumerate(key_a_private_der())
            )
        ),
    )
)
def test_loaders_raise_only_key_format_error(material):
    for loader in (keys.load_private_key, keys.load_public_key, keys.fingerprint):
        with contextlib.suppress(KeyFormatError):
            loader(material)


@pytest.mark.parametrize("value", [None, 42, 4.2, ["a"], {"key": "value"}, object()])
def test_values_of_other_types_are_key_format_errors(value):
    with pytest.raises(KeyFormatError, match="but found a value of type"):
        keys.load_private_key(value)
    with pytest.raises(KeyFormatError, match="but found a value of type"):
        keys.load_public_key(value)


def test_key_format_error_is_a_value_error_and_an_alipay_error():
    from django_alipay.protocol.errors import AlipayError

    with pytest.raises(ValueError, match="expected a private key"):
        keys.load_private_key("garbage")
    with pytest.raises(AlipayError):
        keys.load_private_key("garbage")


# -------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("source", ["key_a_pkcs8.pem", "key_a_public.pem", "key_a_certificate.pem"])
def test_public_key_one_line_matches_openssl_output(source):
    assert keys.public_key_one_line(key_text(source)) == KEY_A_PUBLIC_ONE_LINE


def test_public_key_pem_matches_openssl_output():
    assert keys.public_key_pem(key_text("key_a_pkcs1.pem")) == key_text("key_a_public.pem")
    assert keys.public_key_pem(key_text("key_a_public_pkcs1.pem")) == key_text("key_a_public.pem")


def test_private_key_pem_is_pkcs8_and_matches_openssl_output():
    # key_a_pkcs8.pem is the published PKCS#8 form; converting the PKCS#1 form back must give it exactly.
    assert keys.private_key_pem(key_text("key_a_pkcs1.pem")) == key_text("key_a_pkcs8.pem")
    assert keys.private_key_pem(KEY_A_ONE_LINE).startswith("-----BEGIN PRIVATE KEY-----\n")


def test_private_key_pem_refuses_a_public_key():
    with pytest.raises(KeyFormatError):
        keys.private_key_pem(key_text("key_a_public.pem"))


@pytest.mark.parametrize(
    "source", ["key_a_pkcs8.pem", "key_a_pkcs1.pem", "key_a_public.pem", "key_a_public_pkcs1.pem"]
)
def test_fingerprint_is_sha256_of_the_spki_der_for_either_half(source):
    assert keys.fingerprint(key_text(source)) == KEY_A_FINGERPRINT
    assert re.fullmatch(r"SHA256:[0-9a-f]{64}", KEY_A_FINGERPRINT)


def test_fingerprints_of_different_keys_differ():
    assert keys.fingerprint(key_text("alipay_doc_public_key_squashed.pem")) != KEY_A_FINGERPRINT


def test_is_key_pair():
    assert keys.is_key_pair(key_text("key_a_pkcs1.pem"), key_text("key_a_public_squashed.pem")) is True
    assert (
        keys.is_key_pair(key_text("key_a_pkcs8.pem"), key_text("alipay_doc_public_key_squashed.pem")) is False
    )
    assert keys.is_key_pair(key_text("key_a_pkcs8.pem"), key_text("dsa_2048_public.pem")) is False


def test_is_key_pair_refuses_swapped_arguments():
    with pytest.raises(KeyFormatError):
        keys.is_key_pair(key_text("key_a_public.pem"), key_text("key_a_pkcs8.pem"))


def test_is_own_public_key_catches_the_merchant_key_configured_as_alipays():
    merchant_private = key_text("key_a_pkcs8.pem")
    assert keys.is_own_public_key(key_text("key_a_public_one_line.txt"), merchant_private) is True
    assert keys.is_own_public_key(key_text("alipay_doc_public_key_squashed.pem"), merchant_private) is False


# ------------------------------------------------------------------------------------------ generation


@pytest.mark.parametrize(("sign_type", "bits"), [("RSA2", 2048), ("rsa2", 2048), ("RSA", 2048)])
def test_generate_rsa_defaults_to_2048_bits(sign_type, bits):
    key = keys.generate_private_key(sign_type)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == bits


def test_generate_default_is_rsa2():
    key = keys.generate_private_key()
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def test_generate_rsa_1024_only_when_asked_and_not_for_rsa2():
    assert keys.generate_private_key("RSA", bits=1024).key_size == 1024
    with pytest.raises(InvalidParameterError):
        keys.generate_private_key("RSA2", bits=1024)


def test_generate_dsa_defaults_to_1024_bits_with_a_160_bit_subgroup_and_signs():
    # SHA1withDSA in Java (the gateway's side) accepts only a 160-bit q, which only 1024-bit DSA keys have.
    key = keys.generate_private_key("DSA")
    assert isinstance(key, dsa.DSAPrivateKey)
    assert key.key_size == 1024
    assert key.subgroup_bits == 160
    params = {"service": "test", "partner": "123"}
    signature = signing.sign(params, sign_type="DSA", key=key)
    signed = dict(params, sign=signature, sign_type="DSA")
    assert signing.verify(signed, key=keys.public_key_pem(key)) is True


@pytest.mark.parametrize(
    ("sign_type", "bits"),
    [
        ("MD5", None),
        ("RSA", 512),
        ("RSA", 16384),
        ("DSA", 1536),
        ("NONE", None),
        ("RSA2", True),
        ("RSA2", "2048"),
    ],
)
def test_generate_refuses_unusable_requests(sign_type, bits):
    with pytest.raises(InvalidParameterError):
        keys.generate_private_key(sign_type, bits=bits)


def test_generated_key_round_trips_through_its_pem_forms():
    key = keys.generate_private_key("RSA2")
    private_pem = keys.private_key_pem(key)
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert keys.is_key_pair(private_pem, keys.public_key_pem(key))
    assert keys.is_key_pair(private_pem, keys.public_key_one_line(key))
    assert keys.fingerprint(private_pem) == keys.fingerprint(keys.public_key_one_line(key))
