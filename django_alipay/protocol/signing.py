"""Build the mapi pre-sign string and sign or verify it with MD5, RSA (SHA-1), RSA2 (SHA-256) or DSA.

The rules of the mapi signature: take every parameter except ``sign`` and ``sign_type``, drop empty
values, sort by name in byte order, join ``name=value`` with ``&`` using the raw decoded values, turn the
result into bytes with the request's ``_input_charset``, then

* MD5: lowercase hex MD5 of those bytes followed by the merchant's secret key, appended with no separator;
* RSA: RSASSA-PKCS1-v1_5 with SHA-1; RSA2: the same with SHA-256; DSA: SHA1withDSA, DER-encoded;
  each as standard Base64 without line breaks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final, Literal, TypeAlias, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import dsa
from .errors import CharsetError, InvalidParameterError, KeyFormatError
from .keys import KeyMaterial, PrivateKey, PublicKey, load_private_key, load_public_key

__all__ = [
    "SIGN_TYPES",
    "SUPPORTED_CHARSETS",
    "Charset",
    "SignType",
    "SigningKey",
    "VerifyingKey",
    "normalize_charset",
    "normalize_sign_type",
    "presign_string",
    "sign",
    "verify",
]

SignType: TypeAlias = Literal["MD5", "RSA", "RSA2", "DSA"]
Charset: TypeAlias = Literal["utf-8", "gbk", "gb2312"]

SIGN_TYPES: Final[tuple[SignType, ...]] = ("MD5", "RSA", "RSA2", "DSA")
SUPPORTED_CHARSETS: Final[tuple[Charset, ...]] = ("utf-8", "gbk", "gb2312")

_SIGN_TYPE_BY_UPPER: Final[dict[str, SignType]] = {name: name for name in SIGN_TYPES}
_CHARSET_BY_LOWER: Final[dict[str, Charset]] = {name: name for name in SUPPORTED_CHARSETS}
_EXCLUDED: Final = frozenset({"sign", "sign_type"})
# Whitespace that is only layout inside a Base64 signature (wrapped lines); a space may be a "+" instead.
_LAYOUT: Final = str.maketrans("", "", "\r\n\t")
_PKCS1V15: Final = padding.PKCS1v15()
# SHA-1 is what the gateway prescribes for RSA and DSA; it is the protocol's choice, not ours.
_HASH: Final[dict[str, hashes.HashAlgorithm]] = {
    "RSA": hashes.SHA1(),  # noqa: S303
    "RSA2": hashes.SHA256(),
    "DSA": hashes.SHA1(),  # noqa: S303
}
_MD5_HEX_LENGTH: Final = 32
_RSA_CLASSES: Final = (rsa.RSAPrivateKey, rsa.RSAPublicKey)

#: The MD5 secret, or a key in any shape :mod:`django_alipay.protocol.keys` loads.
SigningKey: TypeAlias = KeyMaterial
#: One verification key, or several during a key rotation (any of them may verify).
VerifyingKey: TypeAlias = KeyMaterial | list[KeyMaterial] | tuple[KeyMaterial, ...]


def _shown(value: object) -> str:
    """A short, safe rendering of a rejected non-secret value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def normalize_sign_type(sign_type: object) -> SignType:
    """Return the canonical ``MD5``/``RSA``/``RSA2``/``DSA`` for any letter case of those names.

    Raises InvalidParameterError (parameter ``sign_type``) for anything else. Allow-listing which sign
    types a merchant accepts (and whether lowercase is acceptable on the wire) is the caller's job.
    """
    if sign_type.__class__ is str and sign_type in _SIGN_TYPE_BY_UPPER:
        return _SIGN_TYPE_BY_UPPER[sign_type]
    if isinstance(sign_type, str) and sign_type.isascii():
        found = _SIGN_TYPE_BY_UPPER.get(sign_type.upper())
        if found is not None:
            return found
    raise InvalidParameterError(
        f"unknown sign_type {_shown(sign_type)}; expected one of {', '.join(SIGN_TYPES)}",
        parameter="sign_type",
    )


def normalize_charset(charset: object) -> Charset:
    """Return ``utf-8``, ``gbk`` or ``gb2312`` for any letter case of those names.

    Raises CharsetError (parameter ``_input_charset``) for anything else, including aliases such as
    ``utf8`` or ``cp936``: the gateway is only documented to accept these three spellings.
    """
    if charset.__class__ is str and charset in _CHARSET_BY_LOWER:
        return _CHARSET_BY_LOWER[charset]
    if isinstance(charset, str) and charset.isascii():
        found = _CHARSET_BY_LOWER.get(charset.lower())
        if found is not None:
            return found
    raise CharsetError(
        f"unsupported charset {_shown(charset)}; expected one of {', '.join(SUPPORTED_CHARSETS)}",
        parameter="_input_charset",
    )


def presign_string(params: Mapping[str, str | None]) -> str:
    """The string that is signed: ``name=value`` pairs sorted by name, joined with ``&``.

    ``sign`` and ``sign_type`` are left out, and so are parameters whose value is ``""`` or None. Values are
    used exactly as given (decoded, not URL-encoded; no trimming, no case change), so ``"0.10"`` and
    ``"0.1"`` sign differently. Names are sorted by code point, which is byte order for the ASCII names the
    gateway uses (``_input_charset`` sorts first). The literal string ``"null"`` is kept: dropping it would
    make signatures over data that contains it fail.

    Raises InvalidParameterError naming the parameter when a name or value is not a string: amounts,
    dates and flags must be formatted to their wire strings before signing.
    """
    try:
        names = sorted(params)
    except TypeError:
        raise InvalidParameterError("parameter names must all be strings") from None
    # Names that sorted together are mutually comparable, so if the first and last are strings they all
    # are: one check instead of one per parameter on the verify hot path.
    if names and not (isinstance(names[0], str) and isinstance(names[-1], str)):
        raise InvalidParameterError("parameter names must all be strings")
    pairs: list[str] = []
    for name in names:
        if name == "sign" or name == "sign_type":
            continue
        value = params[name]
        # Exact-type test first: this loop runs for every notification and every verify.
        if value.__class__ is not str:
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidParameterError(
                    f"parameter {_shown(name)} must be a string to be signed, not {type(value).__name__}",
                    parameter=str(name),
                )
        if value:
            pairs.append(f"{name}={value}")
    return "&".join(pairs)


def _encode(text: str, params: Mapping[str, str | None], charset: Charset) -> bytes:
    """Encode the pre-sign string, naming the first parameter that the charset cannot represent."""
    try:
        return text.encode(charset)
    except UnicodeEncodeError:
        pass
    for name, value in sorted((n, v) for n, v in params.items() if v and n not in _EXCLUDED):
        for where, part in (("name", name), ("value", value)):
            try:
                part.encode(charset)
            except UnicodeEncodeError as exc:
                char = exc.object[exc.start]
                raise CharsetError(
                    f"the {where} of parameter {name!r} contains U+{ord(char):04X}, which cannot be encoded "
                    f"in {charset}",
                    parameter=name,
                ) from None
    raise CharsetError(f"the pre-sign string cannot be encoded in {charset}")  # pragma: no cover


def _md5_secret(key: object, charset: Charset) -> bytes:
    """Check and encode one MD5 secret; never quotes it in an error."""
    if isinstance(key, str):
        return _md5_text_secret(key, charset)
    if isinstance(key, (bytes, bytearray)):
        secret = bytes(key)
        return _checked_md5_secret(secret.decode("latin-1"), secret)
    raise KeyFormatError(
        f"expected an MD5 key (the 32 letters and digits from the Alipay portal) but found a "
        f"{type(key).__name__}"
    )


# Every MD5 verify checks and encodes its secret, which costs as much as a tenth of the rest of the check;
# the answer for one text and charset never changes, so it is kept, like the parsed RSA and DSA keys of
# :mod:`keys`. A key that fails its check raises every time (lru_cache keeps no exceptions).
@functools.lru_cache(maxsize=64)
def _md5_text_secret(key: str, charset: Charset) -> bytes:
    try:
        secret = key.encode(charset)
    except UnicodeEncodeError:
        raise KeyFormatError(f"the MD5 key contains characters that cannot be encoded in {charset}") from None
    return _checked_md5_secret(key, secret)


def _checked_md5_secret(text: str, secret: bytes) -> bytes:
    """``secret`` (the encoded ``text``) when it has the shape of an MD5 key, else KeyFormatError."""
    if not secret:
        raise KeyFormatError(
            "expected an MD5 key (the 32 letters and digits from the Alipay portal) but it is empty"
        )
    if "-----BEGIN" in text or len(text) > 64:
        raise KeyFormatError(
            "expected an MD5 key (the 32 letters and digits from the Alipay portal) but this looks like an "
            "RSA/DSA key; use sign_type RSA2, RSA or DSA with it"
        )
    if text != text.strip():
        raise KeyFormatError("the MD5 key starts or ends with whitespace; remove it (it would be signed too)")
    return secret


# isinstance() against cryptography's abstract key classes costs a third of a microsecond; the concrete
# class of a loaded key never changes its answer, so it is remembered per class.
_IS_RSA_BY_CLASS: dict[type, bool] = {}


def _check_algorithm(key: PrivateKey | PublicKey, sign_type: SignType) -> bool:
    """Refuse a key of the wrong algorithm for ``sign_type``; True when the key is an RSA key."""
    is_rsa = _IS_RSA_BY_CLASS.get(key.__class__)
    if is_rsa is None:
        is_rsa = _IS_RSA_BY_CLASS[key.__class__] = isinstance(key, _RSA_CLASSES)
    if sign_type == "DSA" and is_rsa:
        raise KeyFormatError("sign_type DSA needs a DSA key but the key given is an RSA key")
    if sign_type != "DSA" and not is_rsa:
        raise KeyFormatError(f"sign_type {sign_type} needs an RSA key but the key given is a DSA key")
    return is_rsa


def sign(
    params: Mapping[str, str | None],
    *,
    sign_type: str,
    key: SigningKey,
    charset: str = "utf-8",
) -> str:
    """Sign ``params`` and return the value of the ``sign`` parameter.

    ``key`` is the MD5 secret (str) for MD5, or the merchant's private key for RSA/RSA2/DSA in any shape
    :func:`~django_alipay.protocol.keys.load_private_key` accepts. ``charset`` must be the request's
    ``_input_charset``; when ``params`` carry an ``_input_charset`` naming a different charset this raises
    CharsetError, because the gateway would hash other bytes than the ones signed here. Likewise a
    ``sign_type`` parameter that disagrees with ``sign_type`` raises InvalidParameterError.

    Raises CharsetError naming the parameter whose value the charset cannot encode (an emoji under GBK),
    KeyFormatError for unusable keys; never returns a signature over substituted characters.
    """
    kind = normalize_sign_type(sign_type)
    encoding = normalize_charset(charset)
    declared_charset = params.get("_input_charset")
    if declared_charset and normalize_charset(declared_charset) != encoding:
        raise CharsetError(
            f"params declare _input_charset={declared_charset!r} but are being signed as {encoding}",
            parameter="_input_charset",
        )
    declared_type = params.get("sign_type")
    if declared_type and normalize_sign_type(declared_type) != kind:
        raise InvalidParameterError(
            f"params declare sign_type={declared_type!r} but are being signed with {kind}",
            parameter="sign_type",
        )
    if kind == "MD5":
        secret = _md5_secret(key, encoding)
        data = _encode(presign_string(params), params, encoding)
        # MD5 is what the gateway's protocol prescribes for this sign type; it is not our choice.
        return hashlib.md5(data + secret).hexdigest()  # noqa: S324
    private = load_private_key(key)
    is_rsa = _check_algorithm(private, kind)
    data = _encode(presign_string(params), params, encoding)
    if is_rsa:
        signature = cast(rsa.RSAPrivateKey, private).sign(data, _PKCS1V15, _HASH[kind])
    else:
        signature = cast(dsa.DSAPrivateKey, private).sign(data, _HASH[kind])
    return base64.b64encode(signature).decode("ascii")


def verify(
    params: Mapping[str, str | None],
    *,
    key: VerifyingKey,
    sign_type: str | None = None,
    charset: str = "utf-8",
) -> bool:
    """Whether ``params["sign"]`` is a valid signature of ``params``.

    ``sign_type`` defaults to ``params["sign_type"]``; when both are given and disagree the answer is
    False (the data claims another algorithm than the one the caller trusts). A missing or unknown sign
    type raises InvalidParameterError.

    ``key`` is the MD5 secret, or Alipay's public key in any shape
    :func:`~django_alipay.protocol.keys.load_public_key` accepts, or a list/tuple of them during a key
    rotation (True if any verifies). Every key is checked before anything else, so a bad key raises
    KeyFormatError even when the signature is missing.

    Returns False, never raises, for a missing, empty, non-ASCII, non-Base64 or wrong-length signature,
    and for values the charset cannot encode (they cannot have been signed in it). RSA/RSA2/DSA
    signatures whose ``+`` turned into spaces, or whose Base64 is wrapped in lines, still verify. Like
    :func:`presign_string`, a parameter value that is not a string (a programming error, never wire data)
    raises InvalidParameterError.

    MD5 signatures are compared in constant time and case-insensitively: Alipay sends lowercase hex, but
    an uppercase rendering carries the same 128 bits, so accepting it admits no forgery and spares
    integrations that upper-case hex a spurious failure.
    """
    encoding = normalize_charset(charset)
    declared = params.get("sign_type")
    if sign_type is None:
        if not declared:
            raise InvalidParameterError(
                "sign_type is missing: cannot tell how to verify", parameter="sign_type"
            )
        kind = normalize_sign_type(declared)
    else:
        kind = normalize_sign_type(sign_type)
        if declared:
            try:
                if normalize_sign_type(declared) != kind:
                    return False
            except InvalidParameterError:
                return False
    candidates = key if isinstance(key, (list, tuple)) else (key,)
    if not candidates:
        raise KeyFormatError("no verification key given")

    if kind == "MD5":
        # One key, the usual case, without a list comprehension (a function call of its own in Python 3.11)
        # or a loop: this is the path every MD5 notification takes.
        if len(candidates) == 1:
            secret = _md5_secret(candidates[0], encoding)
            secrets = None
        else:
            secrets = [_md5_secret(candidate, encoding) for candidate in candidates]
        received = params.get("sign")
        if not isinstance(received, str) or len(received) != _MD5_HEX_LENGTH or not received.isascii():
            return False
        try:
            data = presign_string(params).encode(encoding)
        except UnicodeEncodeError:
            return False
        received_hex = received.lower().encode("ascii")
        if secrets is None:
            computed = hashlib.md5(data + secret).hexdigest().encode("ascii")  # noqa: S324 (protocol's MD5)
            return hmac.compare_digest(computed, received_hex)
        matched = False
        for secret in secrets:
            computed = hashlib.md5(data + secret).hexdigest().encode("ascii")  # noqa: S324 (protocol's MD5)
            matched |= hmac.compare_digest(computed, received_hex)
        return matched

    checked = [
        (public_key, _check_algorithm(public_key, kind)) for public_key in map(load_public_key, candidates)
    ]
    signatures = _signature_candidates(params.get("sign"))
    if not signatures:
        return False
    try:
        data = presign_string(params).encode(encoding)
    except UnicodeEncodeError:
        return False
    algorithm = _HASH[kind]
    for signature in signatures:
        for public_key, is_rsa in checked:
            try:
                if is_rsa:
                    cast(rsa.RSAPublicKey, public_key).verify(signature, data, _PKCS1V15, algorithm)
                else:
                    cast(dsa.DSAPublicKey, public_key).verify(signature, data, algorithm)
            except InvalidSignature:
                continue
            return True
    return False


def _signature_candidates(received: object) -> list[bytes]:
    """The byte strings an RSA/RSA2/DSA ``sign`` value may stand for, most likely first (none: malformed).

    Line breaks and tabs are layout (one independent SDK wraps its Base64 in lines) and are dropped. A space
    is either a ``+`` that form decoding turned into a space (the SDKs repair it so) or more layout; both
    readings are tried, and a wrong one only ever fails to verify.
    """
    if not isinstance(received, str) or not received.isascii():
        return []
    compact = received.translate(_LAYOUT)
    readings = [compact.replace(" ", "+")]
    if " " in compact:
        readings.append(compact.replace(" ", ""))
    found: list[bytes] = []
    for text in readings:
        # Base64 with padding always has a length divisible by 4 (Python's decoder alone would accept a
        # surplus '=').
        if not text or len(text) % 4:
            continue
        try:
            signature = binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            continue
        if signature:
            found.append(signature)
    return found
