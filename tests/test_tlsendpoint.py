"""The tls: server endpoint: modern protocols only, SNI, reload of renewed certificates."""
import hashlib
import os
import shutil
import socket
import ssl

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from ymds.demo import ensure_certificate
from ymds.tlsendpoint import server_endpoint


def make_cert_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    ensure_certificate(path)
    return path


def fingerprint_file(path: str) -> str:
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def handshake(port: int, server_name: str | None = None, version=None) -> tuple[str, str]:
    """Blocking TLS handshake: (protocol, sha256 of the server certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        context.minimum_version = version
        context.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as s:
            return s.version(), hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class TLSEndpointTests(unittest.TestCase):
    def listen(self, description):
        d = server_endpoint(reactor, description).listen(Factory.forProtocol(Echo))

        def listening(port):
            self.addCleanup(port.stopListening)
            return port.getHost().port

        return d.addCallback(listening)

    async def _protocols(self):
        directory = make_cert_dir(self.mktemp())
        port = await self.listen(f"tls:{directory}:port=0:interface=127.0.0.1")
        protocol, _ = await deferToThread(handshake, port, None, ssl.TLSVersion.TLSv1_2)
        self.assertEqual(protocol, "TLSv1.2")
        protocol, _ = await deferToThread(handshake, port)
        self.assertEqual(protocol, "TLSv1.3")
        try:
            await deferToThread(handshake, port, None, ssl.TLSVersion.TLSv1_1)
        except (ssl.SSLError, OSError):
            pass
        else:
            self.fail("a TLS 1.1 handshake succeeded")

    def test_tls12_and_13_only(self):
        return Deferred.fromCoroutine(self._protocols())

    async def _reload(self):
        directory = make_cert_dir(self.mktemp())
        first = fingerprint_file(os.path.join(directory, "cert.pem"))
        port = await self.listen(f"tls:{directory}:port=0:interface=127.0.0.1:reload=0")
        _, served = await deferToThread(handshake, port)
        self.assertEqual(served, first)
        # A renewal: new key and certificate written in place.
        other = make_cert_dir(self.mktemp())
        shutil.copy(os.path.join(other, "cert.pem"), os.path.join(directory, "cert.pem"))
        shutil.copy(os.path.join(other, "key.pem"), os.path.join(directory, "key.pem"))
        st = os.stat(os.path.join(directory, "cert.pem"))
        os.utime(os.path.join(directory, "cert.pem"), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        _, served = await deferToThread(handshake, port)
        self.assertEqual(served, fingerprint_file(os.path.join(other, "cert.pem")))
        # A half-written renewal keeps the current certificate.
        with open(os.path.join(directory, "cert.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ngarbage\n")
        _, served = await deferToThread(handshake, port)
        self.assertEqual(served, fingerprint_file(os.path.join(other, "cert.pem")))

    def test_reload_renewed_certificate(self):
        return Deferred.fromCoroutine(self._reload())

    async def _sni(self):
        directory = self.mktemp()
        a = make_cert_dir(os.path.join(directory, "a.example"))
        b = make_cert_dir(os.path.join(directory, "b.example"))
        port = await self.listen(f"tls:{directory}:port=0:interface=127.0.0.1")
        _, served_a = await deferToThread(handshake, port, "a.example")
        _, served_b = await deferToThread(handshake, port, "b.example")
        self.assertEqual(served_a, fingerprint_file(os.path.join(a, "cert.pem")))
        self.assertEqual(served_b, fingerprint_file(os.path.join(b, "cert.pem")))

    def test_sni_by_subdirectory(self):
        return Deferred.fromCoroutine(self._sni())

    def test_empty_directory_is_refused(self):
        directory = self.mktemp()
        os.makedirs(directory)
        e = self.assertRaises(ValueError, server_endpoint, reactor, f"tls:{directory}:port=0")
        self.assertIn("no fullchain.pem/privkey.pem", str(e))


def cbc_only_handshake(port: int) -> str:
    """A TLS 1.2 client offering only CBC-SHA1 suites (what Twisted's defaults accepted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as s:
            return s.cipher()[0]


class SSLEndpointPolicyTests(unittest.TestCase):
    """ssl: endpoints get the same TLS 1.2+ ECDHE-AEAD policy as tls: ones."""

    listen = TLSEndpointTests.listen

    async def _policy(self, description_of):
        directory = os.path.abspath(make_cert_dir(self.mktemp()))
        port = await self.listen(description_of(directory))
        protocol, _ = await deferToThread(handshake, port, None, ssl.TLSVersion.TLSv1_2)
        self.assertEqual(protocol, "TLSv1.2")
        with self.assertRaises((ssl.SSLError, OSError)):
            await deferToThread(cbc_only_handshake, port)
        with self.assertRaises((ssl.SSLError, OSError)):
            await deferToThread(handshake, port, None, ssl.TLSVersion.TLSv1_1)

    def test_ssl_endpoint_refuses_cbc_sha1(self):
        return Deferred.fromCoroutine(self._policy(
            lambda d: f"ssl:0:interface=127.0.0.1:privateKey={d}/key.pem:certKey={d}/cert.pem"))

    def test_tls_endpoint_refuses_cbc_sha1(self):
        return Deferred.fromCoroutine(self._policy(lambda d: f"tls:{d}:port=0:interface=127.0.0.1"))

    def test_weakening_options_refused(self):
        directory = os.path.abspath(make_cert_dir(self.mktemp()))
        self.assertRaises(ValueError, server_endpoint, reactor,
                          f"ssl:0:privateKey={directory}/key.pem:sslmethod=SSLv23_METHOD")
