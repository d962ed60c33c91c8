"""Load, describe and generate the RSA and DSA keys that sign and verify mapi gateway data.

Keys reach a merchant's settings in every shape people paste: PEM with or without its line breaks (the
Alipay portal and its documents show ``-----BEGIN PUBLIC KEY-----MIGf...-----END PUBLIC KEY-----`` on one
line), PKCS#1 or PKCS#8, the bare Base64 of the DER on one line (what the Java SDK wants), raw DER bytes,
Windows line endings, a byte-order mark, or ``\\n`` written literally by an environment file. All of them load
here. Anything else raises :class:`~django_alipay.protocol.errors.KeyFormatError` with a message that says
what was expected and what was found, and that never quotes the key material itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519

from . import dsa
from .errors import InvalidParameterError, KeyFormatError

__all__ = [
    "KeyMaterial",
    "PrivateKey",
    "PublicKey",
    "fingerprint",
    "generate_private_key",
    "is_key_pair",
    "is_own_public_key",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_one_line",
    "public_key_pem",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | dsa.DSAPrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | dsa.DSAPublicKey
#: Anything the loaders accept: PEM or Base64 text, DER bytes, or an already loaded key object.
KeyMaterial: TypeAlias = str | bytes | PrivateKey | PublicKey

EXPECTED_PRIVATE = (
    "expected a private key (PKCS#8 'BEGIN PRIVATE KEY' or PKCS#1 'BEGIN RSA PRIVATE KEY', "
    "or its Base64 DER on one line)"
)
EXPECTED_PUBLIC = (
    "expected a public key (X.509 'BEGIN PUBLIC KEY' or PKCS#1 'BEGIN RSA PUBLIC KEY', "
    "or its Base64 DER on one line)"
)
EXPECTED_ANY = "expected an RSA or DSA key (PEM, or its Base64 DER on one line)"

# Smaller keys are broken; Alipay's legacy RSA keys are 1024-bit, so that is the floor for loading.
MIN_KEY_BITS = 1024

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----(.*?)-----END ([A-Z0-9 ]{1,40})-----", re.DOTALL)
_MD5_KEY = re.compile(r"[0-9A-Za-z]{32}")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_WHITESPACE = re.compile(r"\s+")
# isinstance checks use prebuilt tuples: a `A | B` union is rebuilt on every call, on the verify hot path.
_PRIVATE_CLASSES = (rsa.RSAPrivateKey, dsa.DSAPrivateKey)
_PUBLIC_CLASSES = (rsa.RSAPublicKey, dsa.DSAPublicKey)
_RSA_CLASSES = (rsa.RSAPrivateKey, rsa.RSAPublicKey)
_USABLE_CLASSES = (rsa.RSAPrivateKey, rsa.RSAPublicKey, dsa.DSAPrivateKey, dsa.DSAPublicKey)
_OTHER_ALGORITHMS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "an EC key"),
    ((ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey), "an Ed25519 key"),
    ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "an Ed448 key"),
    ((x25519.X25519PrivateKey, x25519.X25519PublicKey), "an X25519 key"),
    ((x448.X448PrivateKey, x448.X448PublicKey), "an X448 key"),
)
_KEY_OBJECT_CLASSES: tuple[type, ...] = _USABLE_CLASSES + tuple(
    c for group, _ in _OTHER_ALGORITHMS for c in group
)
_PRIVATE_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "DSA PRIVATE KEY"})
_PUBLIC_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE"})


@dataclass(frozen=True)
class _Found:
    """A parsed key and the words that describe where it came from (never the key bytes)."""

    key: object
    source: str  # e.g. "BEGIN PUBLIC KEY", "Base64 DER", "DER bytes"
    certificate: bool = False


def _kind(key: object, certificate: bool = False) -> str:
    if certificate:
        return "a certificate"
    if isinstance(key, _PRIVATE_CLASSES):
        return "a private key"
    if isinstance(key, _PUBLIC_CLASSES):
        return "a public key"
    return "a key"


def _algorithm_name(key: object) -> str | None:
    """Name a key's algorithm for messages; None for the two algorithms mapi accepts."""
    if isinstance(key, _USABLE_CLASSES):
        return None
    for classes, name in _OTHER_ALGORITHMS:
        if isinstance(key, classes):
            return name
    return "an unsupported key type"


def _noun(source: str) -> str:
    """Name where unreadable material came from: 'a PEM block (BEGIN X)', 'Base64 text' or 'DER bytes'."""
    if source.startswith("BEGIN "):
        return f"a PEM block ({source})"
    return "Base64 text" if source == "Base64 DER" else source


def _encrypted_error(expected: str, source: str) -> KeyFormatError:
    return KeyFormatError(
        f"{expected} but found an encrypted private key ({source}); give the unencrypted key, "
        "for example the output of `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
    )


def _parse_der(der: bytes, source: str, expected: str) -> _Found:
    """Parse DER as a DSA key, a private key, a public key or a certificate, in that order.

    DSA keys go to :mod:`django_alipay.protocol.dsa`, which knows which installed library can use them.
    """
    dsa_key = dsa.load_der(der)
    if dsa_key is not None:
        return _Found(dsa_key, source)
    try:
        return _Found(serialization.load_der_private_key(der, password=None), source)
    except TypeError:
        # cryptography signals "this private key needs a password" with a TypeError.
        raise _encrypted_error(expected, source) from None
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        return _Found(serialization.load_der_public_key(der), source)
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        certificate = x509.load_der_x509_certificate(der)
        return _Found(_certificate_key(certificate), source, certificate=True)
    except (ValueError, UnsupportedAlgorithm):
        pass
    raise KeyFormatError(f"{expected} but could not read a key from {_noun(source)} (damaged or cut short?)")


def _certificate_key(certificate: x509.Certificate) -> object:
    """The public key of a certificate; a DSA one comes back as this library's DSA key."""
    with dsa.quiet():
        key = certificate.public_key()
    return dsa.from_cryptography(key) if dsa.is_cryptography_dsa(key) else key


def _decode_base64(body: str, expected: str, source: str) -> bytes:
    what = "text" if source == "Base64 DER" else _noun(source)
    compact = _WHITESPACE.sub("", body)
    if not compact:
        raise KeyFormatError(f"{expected} but found {what} with nothing inside")
    # A lost trailing '=' is a common copy-paste accident and harmless: the DER parser checks the result.
    compact += "=" * (-len(compact) % 4)
    if not _BASE64_TEXT.fullmatch(compact):
        raise KeyFormatError(f"{expected} but found {what} that is not valid Base64")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{expected} but found {what} that is not valid Base64") from None


def _parse_text(text: str, expected: str) -> _Found:
    # Environment files and JSON often carry a PEM with literal "\n"; a backslash is never part of Base64.
    text = text.replace("\\r", "\n").replace("\\n", "\n").replace("\r", "\n").strip().lstrip("\ufeff").strip()
    if not text:
        raise KeyFormatError(f"{expected} but the key is empty")
    if _MD5_KEY.fullmatch(text):
        raise KeyFormatError(
            f"{expected} but this looks like an MD5 key (32 letters and digits), not an RSA/DSA key"
        )
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        if "-----BEGIN" in text or "-----END" in text:
            raise KeyFormatError(
                f"{expected} but found a PEM block whose BEGIN or END line is missing or damaged "
                "(truncated paste?)"
            )
        if not _BASE64_TEXT.fullmatch(_WHITESPACE.sub("", text)):
            raise KeyFormatError(f"{expected} but found text that is neither PEM nor Base64")
        return _parse_der(_decode_base64(text, expected, "Base64 DER"), "Base64 DER", expected)
    if len(blocks) > 1:
        labels = ", ".join(f"BEGIN {label}" for label, _, _ in blocks)
        raise KeyFormatError(
            f"{expected} but found {len(blocks)} PEM blocks ({labels}); give exactly one key"
        )
    label, body, end_label = blocks[0]
    source = f"BEGIN {label}"
    if label != end_label:
        raise KeyFormatError(f"{expected} but found a PEM block that begins '{label}' and ends '{end_label}'")
    if label == "ENCRYPTED PRIVATE KEY" or ("Proc-Type:" in body and "ENCRYPTED" in body):
        raise _encrypted_error(expected, source)
    if label not in _PRIVATE_LABELS and label not in _PUBLIC_LABELS:
        if label in {"EC PRIVATE KEY", "EC PARAMETERS"}:
            raise KeyFormatError(f"Alipay mapi accepts RSA or DSA keys; found an EC key ({source})")
        if label == "OPENSSH PRIVATE KEY":
            raise KeyFormatError(
                f"{expected} but found an OpenSSH private key ({source}); convert it with "
                "`ssh-keygen -p -m PKCS8 -f keyfile`"
            )
        raise KeyFormatError(f"{expected} but found a PEM block '{source}', which is not an RSA/DSA key")
    return _parse_der(_decode_base64(body, expected, source), source, expected)


def _parse(data: str | bytes, expected: str) -> _Found:
    """Parse key text or DER bytes into a key object and a description of where it came from."""
    if isinstance(data, bytes):
        # A real key's DER is over 127 bytes long, so its length octets are not ASCII: ASCII bytes are text.
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return _parse_der(data, "DER bytes", expected)
        return _parse_text(text, expected)
    return _parse_text(data, expected)


def _found(data: object, expected: str) -> _Found:
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if isinstance(data, str | bytes):
        return _parse(data, expected)
    if isinstance(data, _KEY_OBJECT_CLASSES):
        return _Found(data, "key object")
    if dsa.is_cryptography_dsa(data):
        return _Found(dsa.from_cryptography(data), "key object")
    if isinstance(data, x509.Certificate):
        return _Found(_certificate_key(data), "certificate object", certificate=True)
    raise KeyFormatError(f"{expected} but found a value of type {type(data).__name__}")


def _check_usable(found: _Found) -> None:
    """Refuse keys of other algorithms and keys too short to be safe."""
    algorithm = _algorithm_name(found.key)
    if algorithm is not None:
        raise KeyFormatError(f"Alipay mapi accepts RSA or DSA keys; found {algorithm} ({found.source})")
    key = found.key
    assert isinstance(key, _USABLE_CLASSES)
    if key.key_size < MIN_KEY_BITS:
        algorithm = "RSA" if isinstance(key, _RSA_CLASSES) else "DSA"
        raise KeyFormatError(
            f"expected an RSA or DSA key of at least {MIN_KEY_BITS} bits but found a {key.key_size}-bit "
            f"{algorithm} key ({found.source})"
        )


def load_private_key(data: KeyMaterial) -> PrivateKey:
    """Load a merchant's RSA or DSA private key from any common shape.

    Accepts PKCS#8 (``BEGIN PRIVATE KEY``) or traditional PKCS#1/DSA (``BEGIN RSA PRIVATE KEY``) PEM, with
    or without line breaks; the Base64 of the DER on one line or wrapped; raw DER bytes; or a loaded
    cryptography private key object. Results are cached by the exact text or bytes given.

    Raises KeyFormatError naming what was expected and what was found: a public key, a certificate, an
    encrypted key, an EC/Ed25519 key, an MD5 key, a key under 1024 bits, or something unreadable.
    """
    if data.__class__ is str or data.__class__ is bytes:
        return _private_from_text(data)
    return _private_key(data)


def load_public_key(data: KeyMaterial) -> PublicKey:
    """Load an RSA or DSA public key (normally Alipay's) from any common shape.

    Accepts X.509 SubjectPublicKeyInfo (``BEGIN PUBLIC KEY``) or PKCS#1 (``BEGIN RSA PUBLIC KEY``) PEM, with
    or without line breaks; the Base64 of the DER; raw DER bytes; an X.509 certificate (its public key is
    used); or a loaded cryptography public key object. Results are cached by the exact text or bytes given.

    A private key is refused rather than reduced to its public half: a private key where a public one
    belongs is a configuration mistake worth reporting, and a private key has no place in verification.
    """
    # verify() calls this for every message: a loaded key or already seen text must cost next to nothing.
    if data.__class__ is str or data.__class__ is bytes:
        return _public_from_text(data)
    if isinstance(data, _PUBLIC_CLASSES) and data.key_size >= MIN_KEY_BITS:
        return data
    return _public_key(data)


def _private_key(data: object) -> PrivateKey:
    found = _found(data, EXPECTED_PRIVATE)
    _check_usable(found)
    if not isinstance(found.key, _PRIVATE_CLASSES):
        raise KeyFormatError(
            f"{EXPECTED_PRIVATE} but found {_kind(found.key, found.certificate)} ({found.source})"
        )
    return found.key


def _public_key(data: object) -> PublicKey:
    found = _found(data, EXPECTED_PUBLIC)
    _check_usable(found)
    if not isinstance(found.key, _PUBLIC_CLASSES):
        raise KeyFormatError(f"{EXPECTED_PUBLIC} but found {_kind(found.key)} ({found.source})")
    return found.key


# Parsing a PEM costs tens of microseconds, more than verifying a signature; settings hand us the same
# text for every message, so each distinct text is parsed once. Failures are not cached (lru_cache does
# not store exceptions), so a corrected setting is picked up at once.
@functools.lru_cache(maxsize=64)
def _private_from_text(data: str | bytes) -> PrivateKey:
    return _private_key(data)


@functools.lru_cache(maxsize=64)
def _public_from_text(data: str | bytes) -> PublicKey:
    return _public_key(data)


def _public_half(data: KeyMaterial) -> PublicKey:
    """The public key of either a private or a public key, in any accepted shape."""
    found = _found(data, EXPECTED_ANY)
    _check_usable(found)
    key = found.key
    if isinstance(key, _PRIVATE_CLASSES):
        return key.public_key()
    assert isinstance(key, _PUBLIC_CLASSES)
    return key


def _spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_one_line(key: KeyMaterial) -> str:
    """The Base64 DER SubjectPublicKeyInfo on one line: the form Alipay asks merchants to submit.

    ``key`` may be a private key (its public half is given) or a public key, in any accepted shape.
    """
    return base64.b64encode(_spki_der(_public_half(key))).decode("ascii")


def public_key_pem(key: KeyMaterial) -> str:
    """The public key as an X.509 SubjectPublicKeyInfo PEM (``BEGIN PUBLIC KEY``) string.

    ``key`` may be a private key (its public half is given) or a public key, in any accepted shape.
    """
    pem = _public_half(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


def private_key_pem(key: KeyMaterial) -> str:
    """The private key as an unencrypted PKCS#8 PEM (``BEGIN PRIVATE KEY``) string; it is a secret."""
    pem = load_private_key(key).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii")


def fingerprint(key: KeyMaterial) -> str:
    """``"SHA256:"`` + hex SHA-256 of the DER SubjectPublicKeyInfo: safe to show and log.

    A private key and its public key have the same fingerprint, so admins can match the two halves.
    """
    return "SHA256:" + hashlib.sha256(_spki_der(_public_half(key))).hexdigest()


def is_key_pair(private_key: KeyMaterial, public_key: KeyMaterial) -> bool:
    """Whether ``public_key`` is the public half of ``private_key`` (False if their algorithms differ).

    Raises KeyFormatError when either cannot be loaded as the kind of key its argument names.
    """
    private = load_private_key(private_key)
    public = load_public_key(public_key)
    return _spki_der(private.public_key()) == _spki_der(public)


def is_own_public_key(alipay_public_key: KeyMaterial, merchant_private_key: KeyMaterial) -> bool:
    """Whether the key configured as *Alipay's* public key is in fact the merchant's own public key.

    This is the commonest field mistake: the merchant uploads its public key to Alipay and then pastes the
    same key into the "Alipay public key" setting. Every signature from Alipay then fails to verify. A
    configuration check should refuse the setting when this returns True.
    """
    return is_key_pair(merchant_private_key, alipay_public_key)


_RSA_DEFAULT_BITS = 2048


def generate_private_key(sign_type: str = "RSA2", *, bits: int | None = None) -> PrivateKey:
    """Generate a new merchant private key for ``sign_type`` (RSA2, RSA or DSA).

    RSA2 and RSA default to 2048 bits (RSA2 refuses less than 2048; RSA accepts 1024 only when asked for
    explicitly, for legacy counterparts). DSA defaults to 1024 bits (1024, 2048 or 3072 allowed, and 4096
    where cryptography still does DSA).

    Why 1024 for DSA: the gateway's algorithm is SHA1withDSA, and Java's SHA1withDSA (what Alipay runs)
    refuses keys whose subgroup ``q`` is longer than 160 bits; only 1024-bit DSA keys have a 160-bit ``q``.
    Larger DSA keys sign and verify here, but a Java counterpart may reject them: prefer RSA2 for new
    merchants.
    MD5 has no key pair and raises InvalidParameterError.
    """
    from .signing import normalize_sign_type  # signing imports this module

    kind = normalize_sign_type(sign_type)
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)):
        raise InvalidParameterError("bits must be an integer number of bits", parameter="bits")
    if kind == "MD5":
        raise InvalidParameterError(
            "MD5 signs with a shared secret from the Alipay portal, not with a key pair",
            parameter="sign_type",
        )
    if kind == "DSA":
        size = 1024 if bits is None else bits
        return dsa.generate(size)
    size = _RSA_DEFAULT_BITS if bits is None else bits
    minimum = 2048 if kind == "RSA2" else 1024
    if not minimum <= size <= 8192:
        raise InvalidParameterError(
            f"{kind} keys must have between {minimum} and 8192 bits, not {size}", parameter="bits"
        )
    return rsa.generate_private_key(public_exponent=65537, key_size=size)
