"""DSA through both of its libraries: cryptography (while it has DSA) and pycryptodome (the fallback).

The two are checked against each other and against the openssl command line on the same keys and messages,
the choice between them is tested, and so is the clear error when neither can do DSA.
"""

from __future__ import annotations

import base64
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from django_alipay.protocol import dsa, keys, signing
from django_alipay.protocol.errors import KeyFormatError

KEYS_DIR = pathlib.Path(__file__).parent / "data" / "keys"
MESSAGES = [b"partner=2088101122136241&service=forex_refund", "subject=中文商品&total_fee=0.10".encode("gbk")]


def _text(name: str) -> str:
    return (KEYS_DIR / name).read_text(encoding="ascii")


def _der(name: str) -> bytes:
    return base64.b64decode("".join(line for line in _text(name).splitlines() if "-----" not in line))


@pytest.fixture
def use_backend(monkeypatch):
    """Switch the process's DSA backend for one test and restore the choice afterwards."""

    def switch(name: str) -> None:
        monkeypatch.setenv(dsa.BACKEND_VARIABLE, name)
        dsa._reset_backend()
        assert dsa.backend() == name

    yield switch
    monkeypatch.undo()
    dsa._reset_backend()


def _cryptography_has_dsa() -> bool:
    return dsa._cryptography_dsa() is not None


def test_the_backend_in_use_is_the_one_asked_for_or_the_automatic_choice():
    # CI runs the protocol tests a second time with DJANGO_ALIPAY_DSA_BACKEND=pycryptodome: prove it took.
    wanted = os.environ.get(dsa.BACKEND_VARIABLE, "auto")
    if wanted == "auto":
        assert dsa.backend() == ("cryptography" if _cryptography_has_dsa() else "pycryptodome")
    else:
        assert dsa.backend() == wanted
    assert keys.load_private_key(_text("dsa_2048_private.pem"))._backend == dsa.backend()


@pytest.mark.parametrize("signer", dsa.BACKENDS)
@pytest.mark.parametrize("verifier", dsa.BACKENDS)
@pytest.mark.parametrize("message", MESSAGES, ids=["ascii", "gbk"])
def test_a_signature_from_either_library_verifies_in_the_other(use_backend, signer, verifier, message):
    if "cryptography" in (signer, verifier) and not _cryptography_has_dsa():
        pytest.fail("this cryptography release has no DSA: drop the cryptography cases of this test")
    use_backend(signer)
    private = dsa.load_der(_der("dsa_2048_private.pem"))
    assert isinstance(private, dsa.DSAPrivateKey)
    signature = private.sign(message, hashes.SHA1())  # noqa: S303 (the gateway's SHA1withDSA)
    use_backend(verifier)
    public = dsa.load_der(_der("dsa_2048_public.pem"))
    assert isinstance(public, dsa.DSAPublicKey)
    public.verify(signature, message, hashes.SHA1())  # noqa: S303
    with pytest.raises(InvalidSignature):
        public.verify(signature, message + b"x", hashes.SHA1())  # noqa: S303


@pytest.fixture(scope="module")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl command line is needed (Debian package openssl)")
    return path


@pytest.mark.parametrize("name", dsa.BACKENDS)
@pytest.mark.parametrize("message", MESSAGES, ids=["ascii", "gbk"])
def test_each_library_agrees_with_openssl_both_ways(use_backend, openssl, tmp_path, name, message):
    if name == "cryptography" and not _cryptography_has_dsa():
        pytest.fail("this cryptography release has no DSA: drop the cryptography case of this test")
    use_backend(name)
    data = tmp_path / "data"
    data.write_bytes(message)
    theirs = tmp_path / "theirs.sig"
    subprocess.run(
        [
            openssl,
            "dgst",
            "-sha1",
            "-sign",
            str(KEYS_DIR / "dsa_2048_private.pem"),
            "-out",
            str(theirs),
            str(data),
        ],
        check=True,
    )
    public = dsa.load_der(_der("dsa_2048_public.pem"))
    assert isinstance(public, dsa.DSAPublicKey)
    public.verify(theirs.read_bytes(), message, hashes.SHA1())  # noqa: S303

    private = dsa.load_der(_der("dsa_2048_private.pem"))
    assert isinstance(private, dsa.DSAPrivateKey)
    ours = tmp_path / "ours.sig"
    ours.write_bytes(private.sign(message, hashes.SHA1()))  # noqa: S303
    result = subprocess.run(
        [
            openssl,
            "dgst",
            "-sha1",
            "-verify",
            str(KEYS_DIR / "dsa_2048_public.pem"),
            "-signature",
            str(ours),
            str(data),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified OK" in result.stdout


@pytest.mark.parametrize("name", dsa.BACKENDS)
def test_each_library_reads_every_dsa_key_shape_to_the_same_public_key(use_backend, name):
    if name == "cryptography" and not _cryptography_has_dsa():
        pytest.fail("this cryptography release has no DSA: drop the cryptography case of this test")
    use_backend(name)
    expected = _der("dsa_2048_public.pem")
    for shape in ("dsa_2048_private.pem", "dsa_2048_private_traditional.pem"):
        key = dsa.load_der(_der(shape))
        assert isinstance(key, dsa.DSAPrivateKey)
        assert (
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == expected
        )
        assert key.key_size == 2048
    # An RSA key in PKCS#1 form has the same outer shape as OpenSSL's DSA form; it must not be taken for DSA.
    assert dsa.load_der(_der("key_a_pkcs1.pem")) is None
    assert dsa.load_der(_der("key_a_pkcs8.pem")) is None


@pytest.mark.parametrize("name", dsa.BACKENDS)
def test_generated_keys_have_the_160_bit_subgroup_java_needs(use_backend, name):
    if name == "cryptography" and not _cryptography_has_dsa():
        pytest.fail("this cryptography release has no DSA: drop the cryptography case of this test")
    use_backend(name)
    key = keys.generate_private_key("DSA")
    assert (key.key_size, key.subgroup_bits) == (1024, 160)
    params = {"service": "test", "partner": "123"}
    signed = dict(params, sign=signing.sign(params, sign_type="DSA", key=key), sign_type="DSA")
    assert signing.verify(signed, key=keys.public_key_pem(key))


def test_with_no_dsa_library_a_dsa_key_fails_naming_the_extra_and_rsa_still_works(monkeypatch):
    monkeypatch.delenv(dsa.BACKEND_VARIABLE, raising=False)
    monkeypatch.setattr(dsa, "_cryptography_dsa", lambda: None)
    monkeypatch.setattr(dsa, "_pycryptodome_available", lambda: False)
    dsa._reset_backend()
    try:
        assert dsa.backend() is None
        with pytest.raises(dsa.DSAUnavailableError, match=r"django-alipay-global\[dsa\]") as info:
            dsa.load_der(_der("dsa_2048_public.pem"))
        assert isinstance(info.value, KeyFormatError)
        with pytest.raises(dsa.DSAUnavailableError, match="pycryptodome"):
            keys.generate_private_key("DSA")
        assert keys.load_private_key(_text("key_a_pkcs8.pem")).key_size == 1024
    finally:
        monkeypatch.undo()
        dsa._reset_backend()


def test_without_dsa_in_cryptography_the_automatic_choice_is_pycryptodome(monkeypatch):
    monkeypatch.delenv(dsa.BACKEND_VARIABLE, raising=False)
    monkeypatch.setattr(dsa, "_cryptography_dsa", lambda: None)
    dsa._reset_backend()
    try:
        assert dsa.backend() == "pycryptodome"
        key = dsa.load_der(_der("dsa_2048_private.pem"))
        assert isinstance(key, dsa.DSAPrivateKey)
    finally:
        monkeypatch.undo()
        dsa._reset_backend()


def test_an_unknown_backend_name_is_refused_clearly(monkeypatch):
    monkeypatch.setenv(dsa.BACKEND_VARIABLE, "openssl")
    dsa._reset_backend()
    try:
        with pytest.raises(
            dsa.DSAUnavailableError, match="not a DSA backend; use auto, cryptography or pycryptodome"
        ):
            dsa.backend()
    finally:
        monkeypatch.undo()
        dsa._reset_backend()


def test_using_dsa_leaves_the_warning_filters_as_they_were():
    # The deprecation is silenced around our own calls only: no filter may outlive them.
    before = list(warnings.filters)
    key = keys.load_private_key(_text("dsa_2048_private.pem"))
    params = {"service": "test", "partner": "123"}
    signed = dict(params, sign=signing.sign(params, sign_type="DSA", key=key), sign_type="DSA")
    assert signing.verify(signed, key=_text("dsa_2048_public.pem"))
    assert list(warnings.filters) == before


def test_dsa_use_prints_no_warning_with_warnings_as_errors():
    code = (
        "import django_alipay.protocol.keys as k, django_alipay.protocol.signing as s\n"
        "import pathlib\n"
        f"text = pathlib.Path({str(KEYS_DIR / 'dsa_2048_private.pem')!r}).read_text()\n"
        "key = k.load_private_key(text)\n"
        "params = {'service': 'test'}\n"
        "signed = dict(params, sign=s.sign(params, sign_type='DSA', key=key), sign_type='DSA')\n"
        "assert s.verify(signed, key=k.public_key_pem(key))\n"
        "k.generate_private_key('DSA')\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert result.stderr == ""
