"""DSA keys, SHA1withDSA signing and verification, through cryptography while it has DSA, else pycryptodome.

The gateway still lists DSA among its sign types, and merchants who chose it years ago keep it.
cryptography deprecated DSA in its release 51 (every use warns) and says it will remove it; pycryptodome
implements DSA as a maintained, first-class algorithm. This module hides which of the two does the work:

* the backend is chosen once, on first use: the environment variable ``DJANGO_ALIPAY_DSA_BACKEND`` may name
  ``cryptography`` or ``pycryptodome``; otherwise (``auto``) cryptography is used while it still has DSA and
  pycryptodome (the ``dsa`` extra: ``pip install "django-alipay-global[dsa]"``) once it has none;
* keys are this module's own :class:`DSAPrivateKey` / :class:`DSAPublicKey`, whichever backend holds
  them, with the few methods the rest of the protocol layer calls (``key_size``, ``public_key()``,
  ``public_bytes()``, ``private_bytes()``, ``sign()``, ``verify()``);
* cryptography's deprecation warning is silenced only around the calls this module makes into its DSA code,
  under one lock, never with a process-wide filter: any other warning still reaches the application.

When neither library can do DSA, using a DSA key raises :class:`DSAUnavailableError`, which names the extra.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from .errors import InvalidParameterError, KeyFormatError

__all__ = [
    "BACKENDS",
    "BACKEND_VARIABLE",
    "DSAPrivateKey",
    "DSAPublicKey",
    "DSAUnavailableError",
    "backend",
    "from_cryptography",
    "generate",
    "is_cryptography_dsa",
    "load_der",
    "quiet",
]

#: The environment variable that forces a backend (``auto``, ``cryptography`` or ``pycryptodome``).
BACKEND_VARIABLE: Final = "DJANGO_ALIPAY_DSA_BACKEND"
BACKENDS: Final = ("cryptography", "pycryptodome")

_INSTALL_HINT: Final = (
    'install pycryptodome with `pip install "django-alipay-global[dsa]"` (cryptography {version} has no DSA)'
)
# The message cryptography 51+ warns with whenever its DSA code is touched; matched exactly so that a
# different warning from the same calls still surfaces.
_DEPRECATION_MESSAGE: Final = r"DSA is deprecated"
# catch_warnings() swaps the process's filter list; one lock keeps two threads of ours from interleaving
# their swaps (which could otherwise leave our narrow filter installed for good).
_QUIET_LOCK: Final = threading.RLock()
# The OID of DSA keys (1.2.840.10040.4.1) as it appears, DER-encoded, in PKCS#8 and SubjectPublicKeyInfo.
_DSA_OID_DER: Final = bytes.fromhex("06072a8648ce380401")


class DSAUnavailableError(KeyFormatError):
    """A DSA key was given but no installed library can use it; the message names the extra to install."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Run cryptography's DSA code without its deprecation warning (only that one), a thread at a time."""
    with _QUIET_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION_MESSAGE)
        yield


def _cryptography_dsa() -> Any | None:
    """cryptography's DSA module, or None when this release has removed it."""
    try:
        with quiet():
            from cryptography.hazmat.primitives.asymmetric import dsa as module

            module.generate_private_key  # noqa: B018 (an attribute a DSA-capable release must have)
    except (ImportError, AttributeError):
        return None
    return module


def _pycryptodome_available() -> bool:
    try:
        import Crypto.PublicKey.DSA
        import Crypto.Signature.DSS  # noqa: F401
    except ImportError:
        return False
    return True


class _Backend:
    """The backend this process uses, resolved on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._name: str | None = None
        self._resolved = False
        self._classes: tuple[type, ...] = ()

    def resolve(self) -> str | None:
        if self._resolved:
            return self._name
        with self._lock:
            if not self._resolved:
                self._name, self._classes = self._choose()
                self._resolved = True
        return self._name

    def reset(self) -> None:
        """Choose again on next use (tests switch ``DJANGO_ALIPAY_DSA_BACKEND``)."""
        with self._lock:
            self._resolved = False
            self._name = None
            self._classes = ()

    @staticmethod
    def _choose() -> tuple[str | None, tuple[type, ...]]:
        wanted = os.environ.get(BACKEND_VARIABLE, "auto").strip().lower() or "auto"
        if wanted not in ("auto", *BACKENDS):
            raise DSAUnavailableError(
                f"{BACKEND_VARIABLE}={wanted!r} is not a DSA backend; use auto, cryptography or pycryptodome"
            )
        module = _cryptography_dsa()
        with quiet():
            classes = (module.DSAPrivateKey, module.DSAPublicKey) if module is not None else ()
        if wanted == "cryptography":
            if module is None:
                raise DSAUnavailableError(
                    f"{BACKEND_VARIABLE}=cryptography but this cryptography release has no DSA"
                )
            return "cryptography", classes
        if wanted == "pycryptodome":
            if not _pycryptodome_available():
                raise DSAUnavailableError(
                    f"{BACKEND_VARIABLE}=pycryptodome but pycryptodome is not installed; `pip install "
                    f'"django-alipay-global[dsa]"`'
                )
            return "pycryptodome", classes
        if module is not None:
            return "cryptography", classes
        if _pycryptodome_available():
            return "pycryptodome", classes
        return None, classes

    def cryptography_classes(self) -> tuple[type, ...]:
        self.resolve()
        return self._classes

    def require(self) -> str:
        name = self.resolve()
        if name is None:
            import cryptography

            raise DSAUnavailableError(
                "this is a DSA key, and no installed library can use DSA keys: "
                + _INSTALL_HINT.format(version=cryptography.__version__)
            )
        return name


_BACKEND: Final = _Backend()


def backend() -> str | None:
    """The name of the library that does DSA in this process (``cryptography``/``pycryptodome``), or None."""
    return _BACKEND.resolve()


def _reset_backend() -> None:
    _BACKEND.reset()


def _hash_name(algorithm: hashes.HashAlgorithm) -> str:
    if isinstance(algorithm, hashes.SHA1):
        return "SHA1"
    if isinstance(algorithm, hashes.SHA256):
        return "SHA256"
    raise InvalidParameterError(f"DSA signatures here use SHA-1 or SHA-256, not {algorithm.name}")


def _pycryptodome_hash(algorithm: hashes.HashAlgorithm, data: bytes) -> Any:
    if _hash_name(algorithm) == "SHA1":
        from Crypto.Hash import SHA1

        return SHA1.new(data)
    from Crypto.Hash import SHA256

    return SHA256.new(data)


def _pem(der: bytes, label: str) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode("ascii")


class DSAPublicKey:
    """A DSA public key: verifies SHA1withDSA signatures; serialises as SubjectPublicKeyInfo."""

    __slots__ = ("_backend", "_der", "_native", "key_size", "subgroup_bits")

    def __init__(self, der: bytes, native: Any, backend_name: str, key_size: int, subgroup_bits: int) -> None:
        self._der = der
        self._native = native
        self._backend = backend_name
        #: Bits of the prime modulus p (1024, 2048, 3072 ...).
        self.key_size = key_size
        #: Bits of the subgroup order q (160 for 1024-bit keys: what Java's SHA1withDSA accepts).
        self.subgroup_bits = subgroup_bits

    def public_bytes(self, encoding: serialization.Encoding, format: serialization.PublicFormat) -> bytes:
        """SubjectPublicKeyInfo as DER or PEM, the one format mapi keys travel in."""
        if format is not serialization.PublicFormat.SubjectPublicKeyInfo:
            raise ValueError("DSA public keys serialise as SubjectPublicKeyInfo only")
        if encoding is serialization.Encoding.DER:
            return self._der
        if encoding is serialization.Encoding.PEM:
            return _pem(self._der, "PUBLIC KEY")
        raise ValueError(f"unsupported encoding {encoding}")

    def verify(self, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
        """Check a DER-encoded DSA signature of ``data``; raises cryptography's InvalidSignature if wrong."""
        if self._backend == "cryptography":
            with quiet():
                self._native.verify(signature, data, algorithm)
            return
        from Crypto.Signature import DSS

        # The verification equation is the same whatever produced the nonce; this mode takes every key size.
        verifier = DSS.new(self._native, "deterministic-rfc6979", encoding="der")
        try:
            verifier.verify(_pycryptodome_hash(algorithm, data), signature)
        except ValueError:
            raise InvalidSignature from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DSAPublicKey) and other._der == self._der

    def __hash__(self) -> int:
        return hash(self._der)

    def __repr__(self) -> str:
        return f"<DSAPublicKey {self.key_size}-bit via {self._backend}>"


class DSAPrivateKey:
    """A DSA private key: signs with SHA1withDSA (DER-encoded signatures); never shows its secret."""

    __slots__ = ("_backend", "_der", "_native", "_public", "key_size", "subgroup_bits")

    def __init__(self, der: bytes, native: Any, backend_name: str, public: DSAPublicKey) -> None:
        self._der = der
        self._native = native
        self._backend = backend_name
        self._public = public
        self.key_size = public.key_size
        self.subgroup_bits = public.subgroup_bits

    def public_key(self) -> DSAPublicKey:
        """The public half."""
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """Unencrypted PKCS#8 as DER or PEM: the form keys are stored and exchanged in."""
        if format is not serialization.PrivateFormat.PKCS8 or not isinstance(
            encryption_algorithm, serialization.NoEncryption
        ):
            raise ValueError("DSA private keys serialise as unencrypted PKCS#8 only")
        if encoding is serialization.Encoding.DER:
            return self._der
        if encoding is serialization.Encoding.PEM:
            return _pem(self._der, "PRIVATE KEY")
        raise ValueError(f"unsupported encoding {encoding}")

    def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """A DER-encoded DSA signature of ``data`` hashed with ``algorithm`` (SHA-1 for the gateway)."""
        if self._backend == "cryptography":
            with quiet():
                return bytes(self._native.sign(data, algorithm))
        from Crypto.Signature import DSS

        # RFC 6979 nonces: no dependence on the random source, and signatures repeat for the same input.
        signer = DSS.new(self._native, "deterministic-rfc6979", encoding="der")
        return bytes(signer.sign(_pycryptodome_hash(algorithm, data)))

    def __repr__(self) -> str:
        return f"<DSAPrivateKey {self.key_size}-bit via {self._backend}>"


def is_cryptography_dsa(key: object) -> bool:
    """Whether ``key`` is one of cryptography's own DSA key objects (asked without a warning)."""
    classes = _BACKEND.cryptography_classes()
    return bool(classes) and isinstance(key, classes)


def _from_pycryptodome(native: Any) -> DSAPrivateKey | DSAPublicKey:
    public_native = native.publickey()
    public = DSAPublicKey(
        bytes(public_native.export_key(format="DER")),
        public_native,
        "pycryptodome",
        int(public_native.p).bit_length(),
        int(public_native.q).bit_length(),
    )
    if not native.has_private():
        return public
    return DSAPrivateKey(bytes(native.export_key(format="DER", pkcs8=True)), native, "pycryptodome", public)


def _from_cryptography_native(native: Any, backend_name: str) -> DSAPrivateKey | DSAPublicKey:
    """Wrap a cryptography DSA key, moving it to pycryptodome when that is the backend."""
    with quiet():
        public_native = native.public_key() if hasattr(native, "private_numbers") else native
        public_der = public_native.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        private_der = (
            native.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            if public_native is not native
            else None
        )
        q_bits = public_native.parameters().parameter_numbers().q.bit_length()
        key_size = public_native.key_size
    if backend_name == "pycryptodome":
        loaded = load_der(private_der if private_der is not None else public_der)
        assert loaded is not None
        return loaded
    public = DSAPublicKey(public_der, public_native, "cryptography", key_size, q_bits)
    if private_der is None:
        return public
    return DSAPrivateKey(private_der, native, "cryptography", public)


def from_cryptography(key: object) -> DSAPrivateKey | DSAPublicKey:
    """This module's key for one of cryptography's DSA key objects (handed in by an application)."""
    return _from_cryptography_native(key, _BACKEND.require())


def _der_item(der: bytes, offset: int) -> tuple[int, int, int] | None:
    """(tag, start of content, end of content) of the DER item at ``offset``, or None if malformed."""
    if offset + 2 > len(der):
        return None
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or start + count > len(der):
            return None
        length = int.from_bytes(der[start : start + count], "big")
        start += count
    end = start + length
    return (tag, start, end) if end <= len(der) else None


def _looks_like_dsa(der: bytes) -> bool:
    """Whether DER holds a DSA key: the DSA OID (PKCS#8, SubjectPublicKeyInfo) or OpenSSL's own DSA form.

    OpenSSL's "BEGIN DSA PRIVATE KEY" body is SEQUENCE { INTEGER 0, p, q, g, y, x }: six INTEGERs, where an
    RSA key in PKCS#1 form has nine.
    """
    if _DSA_OID_DER in der[:64]:
        return True
    outer = _der_item(der, 0)
    if outer is None or outer[0] != 0x30:
        return False
    count, offset = 0, outer[1]
    while offset < outer[2]:
        item = _der_item(der, offset)
        if item is None or item[0] != 0x02:
            return False
        count, offset = count + 1, item[2]
    return count == 6 and der[outer[1] : outer[1] + 3] == b"\x02\x01\x00"


def load_der(der: bytes) -> DSAPrivateKey | DSAPublicKey | None:
    """Load a DSA key from DER (PKCS#8, OpenSSL's DSA form, SubjectPublicKeyInfo); None if it is not DSA.

    Raises DSAUnavailableError when it is a DSA key and no installed library can use it.
    """
    if not _looks_like_dsa(der):
        return None
    name = _BACKEND.require()
    if name == "pycryptodome":
        from Crypto.PublicKey import DSA

        try:
            imported = DSA.import_key(der)
        except (ValueError, IndexError, TypeError):
            return None
        return _from_pycryptodome(imported)
    with quiet():
        try:
            native: Any = serialization.load_der_private_key(der, password=None)
        except (ValueError, UnsupportedAlgorithm, TypeError):
            try:
                native = serialization.load_der_public_key(der)
            except (ValueError, UnsupportedAlgorithm):
                return None
    if not is_cryptography_dsa(native):
        return None
    return _from_cryptography_native(native, name)


_GENERATE_BITS: Final = {"cryptography": (1024, 2048, 3072, 4096), "pycryptodome": (1024, 2048, 3072)}


def generate(bits: int) -> DSAPrivateKey:
    """A new DSA private key of ``bits`` bits (1024 has the 160-bit subgroup Java's SHA1withDSA needs)."""
    name = _BACKEND.require()
    allowed = _GENERATE_BITS[name]
    if bits not in allowed:
        raise InvalidParameterError(
            f"DSA keys can have {', '.join(map(str, allowed))} bits, not {bits}", parameter="bits"
        )
    if name == "pycryptodome":
        from Crypto.PublicKey import DSA

        key = _from_pycryptodome(DSA.generate(bits))
    else:
        module = _cryptography_dsa()
        assert module is not None
        with quiet():
            native = module.generate_private_key(key_size=bits)
        key = _from_cryptography_native(native, name)
    assert isinstance(key, DSAPrivateKey)
    return key
