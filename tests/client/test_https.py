"""HTTPS connections keep the call's deadline as plain HTTP ones do: one implementation serves both."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from django_alipay.protocol import transport
from django_alipay.protocol.errors import OutcomeUnknownError, TransportError
from tests.client.stub import Canned, xml_success

#: Both tests are of the connection itself: the stub serves on a loopback socket, behind TLS.
pytestmark = pytest.mark.wire

QUERY_OK = {"out_trade_no": "T1", "trade_status": "TRADE_FINISHED", "total_fee": "0.01"}


def _self_signed(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_stub(stub, tmp_path):
    """The stub gateway behind TLS; yields its https URL and the certificate to trust."""
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = stub._server
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return stub.url.replace("http://", "https://"), str(cert_path)


def test_an_https_answer_is_read_as_a_plain_one(stub, https_stub, make_client):
    url, cert = https_stub
    stub.answer(Canned(xml_success(QUERY_OK, element="trade")))

    result = make_client(gateway_url=url, verify=cert, retries=0).single_trade_query(out_trade_no="T1")

    assert result.out_trade_no == "T1"
    assert len(stub.requests) == 1


def test_an_https_answer_trickled_past_the_deadline_is_cut_there(stub, https_stub, make_client):
    url, cert = https_stub
    stub.answer(Canned(xml_success(QUERY_OK, element="trade"), trickle="body", trickle_interval=1.0))
    client = make_client(gateway_url=url, verify=cert, timeout=(2.0, 5.0), deadline=2.0, retries=0)

    with pytest.raises(OutcomeUnknownError) as caught:
        client.single_trade_query(out_trade_no="T1")

    assert "deadline" in caught.value.message


def test_the_http_and_https_connections_share_one_deadline_implementation():
    """Each connection class adds nothing of its own to the shared part and its urllib3 base; the transport's
    own connections read their answers through the same deadline-keeping response."""
    for connection in (transport._DeadlineHTTPConnection, transport._DeadlineHTTPSConnection):
        assert issubclass(connection, transport._DeadlineConnection)
        assert not set(vars(connection)) - {"__module__", "__doc__", "__qualname__"}, connection
    for bare in (transport._BareHTTPConnection, transport._BareHTTPSConnection):
        assert bare.response_class is transport._DeadlineHTTPResponse


def test_a_ca_bundle_that_cannot_be_read_is_a_connection_never_made(stub, https_stub, make_client, tmp_path):
    url, _cert = https_stub
    stub.answer(Canned(xml_success(QUERY_OK, element="trade")))
    client = make_client(gateway_url=url, verify=str(tmp_path / "no-such-bundle.pem"), retries=0)

    with pytest.raises(TransportError):
        client.single_trade_query(out_trade_no="T1")

    assert stub.requests == []
