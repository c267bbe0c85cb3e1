"""``tls:<directory>`` server endpoint: modern TLS from a certificate directory, reloaded.

Twisted ships a ``tls:`` server endpoint of its own, but it re-reads a directory only when
an unknown host name arrives (so a renewed certificate is never picked up, and strangers
can make it re-scan at will).  ymds therefore parses ``tls:`` itself through
:func:`server_endpoint`; every other endpoint type goes to Twisted's serverFromString.

The directory holds either one certificate (``fullchain.pem`` + ``privkey.pem`` as
certbot writes them, or ``cert.pem`` + ``key.pem``) or one sub-directory per host name
for SNI.  Files are re-read when their modification time changes (checked at most every
``reload`` seconds, on new connections), so a renewed certificate is served without a
restart.  Only TLS 1.2+ and forward-secret AEAD ciphers are offered.

    tls:/etc/letsencrypt/live/pay.example.org:port=443
    tls:/etc/ymds/certs:port=8443:interface=127.0.0.1:reload=60
"""

from __future__ import annotations

import os
import time

from OpenSSL import SSL
from OpenSSL.crypto import FILETYPE_PEM
from twisted.internet import ssl
from twisted.internet import endpoints
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

from ymds.util.endpoints import parse_endpoint_description

log = Logger()

# ECDHE only (forward secrecy), AEAD only; TLS 1.3 suites are always on in OpenSSL.
STRONG_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

_PAIRS = (("fullchain.pem", "privkey.pem"), ("cert.pem", "key.pem"))


def _find_pair(directory: str) -> tuple[str, str] | None:
    for cert, key in _PAIRS:
        c, k = os.path.join(directory, cert), os.path.join(directory, key)
        if os.path.exists(c) and os.path.exists(k):
            return c, k
    return None


def _pem_blocks(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        pem = f.read()
    return [b"-----BEGIN CERTIFICATE-----" + part for part in pem.split(b"-----BEGIN CERTIFICATE-----")[1:]]


def _load_context(cert_path: str, key_path: str, extra_chain_path: str | None = None) -> SSL.Context:
    """A server context with our policy: TLS 1.2+, ECDHE + AEAD suites only."""
    blocks = _pem_blocks(cert_path)
    if not blocks:
        raise ValueError(f"{cert_path} holds no certificate")
    if extra_chain_path:
        blocks += _pem_blocks(extra_chain_path)
    with open(key_path, "rb") as f:
        key_pem = f.read()
    leaf = ssl.Certificate.loadPEM(blocks[0])
    key = ssl.KeyPair.load(key_pem, FILETYPE_PEM)
    options = ssl.CertificateOptions(
        privateKey=key.original,
        certificate=leaf.original,
        extraCertChain=[ssl.Certificate.loadPEM(b).original for b in blocks[1:]],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(STRONG_CIPHERS),
    )
    return options.getContext()


@implementer(IOpenSSLContextFactory)
class DirectoryContextFactory:
    """Serves the certificates of a directory, with SNI and reload on change."""

    def __init__(self, directory: str, reload_interval: float = 60.0, now=time.monotonic):
        self.directory = directory
        self.reload_interval = reload_interval
        self._now = now
        self._checked = -1e18
        self._stamp: tuple = ()
        self._default: SSL.Context | None = None
        self._by_name: dict[bytes, SSL.Context] = {}
        self._load()

    def _files(self) -> dict[bytes | None, tuple[str, str]]:
        found: dict[bytes | None, tuple[str, str]] = {}
        pair = _find_pair(self.directory)
        if pair:
            found[None] = pair
        for entry in sorted(os.listdir(self.directory)):
            sub = os.path.join(self.directory, entry)
            if os.path.isdir(sub) and (pair := _find_pair(sub)):
                found[entry.lower().encode("idna")] = pair
        if not found:
            raise ValueError(f"no fullchain.pem/privkey.pem or cert.pem/key.pem under {self.directory}")
        return found

    def _load(self) -> None:
        files = self._files()
        stamp = tuple(sorted((str(n), os.stat(c).st_mtime_ns, os.stat(k).st_mtime_ns) for n, (c, k) in files.items()))
        if stamp == self._stamp:
            return
        contexts = {name: _load_context(*pair) for name, pair in files.items()}
        self._by_name = {n: c for n, c in contexts.items() if n is not None}
        default = contexts.get(None) or next(iter(self._by_name.values()))
        default.set_tlsext_servername_callback(self._choose)
        self._default, self._stamp = default, stamp
        if self._checked > -1e18:
            log.info("tls: reloaded certificates from {directory}", directory=self.directory)

    def _choose(self, connection: SSL.Connection) -> None:
        name = (connection.get_servername() or b"").lower()
        context = self._by_name.get(name)
        if context is not None:
            connection.set_context(context)

    def getContext(self) -> SSL.Context:
        now = self._now()
        if now - self._checked >= self.reload_interval:
            self._checked = now
            try:
                self._load()
            except Exception as e:  # noqa: BLE001 - any failure keeps the working certificate
                # Half-written renewal: keep serving the old certificate.
                log.warn("tls: keeping the current certificate, reload failed: {error}", error=str(e))
        return self._default


def tls_directory_endpoint(reactor, directory, port="443", interface="", backlog="50", reload="60"):
    factory = DirectoryContextFactory(directory, float(reload))
    return SSL4ServerEndpoint(reactor, int(port), factory, backlog=int(backlog), interface=interface)


@implementer(IOpenSSLContextFactory)
class FixedContextFactory:
    """One context built once (the ``ssl:`` endpoint's certificate files)."""

    def __init__(self, context: SSL.Context):
        self._context = context

    def getContext(self) -> SSL.Context:
        return self._context


def ssl_file_endpoint(reactor, port="443", privateKey=None, certKey=None, extraCertChain=None,
                      interface="", backlog="50", **unsupported):
    """Twisted's ``ssl:`` syntax with our TLS policy instead of Twisted's defaults (which
    accept CBC-SHA1 suites).  ``sslmethod``/``dhParameters``/``sniDirectory`` are refused:
    they would weaken or bypass the policy (use ``tls:<directory>`` for SNI)."""
    if unsupported:
        raise ValueError(f"ssl: endpoint option(s) {', '.join(sorted(unsupported))} are not supported; "
                         "use privateKey=, certKey=, extraCertChain=, interface=, backlog= or a tls: endpoint")
    if not privateKey:
        raise ValueError("ssl: endpoint needs privateKey=<key.pem> (and certKey=<cert.pem>)")
    context = _load_context(certKey or privateKey, privateKey, extraCertChain)
    return SSL4ServerEndpoint(reactor, int(port), FixedContextFactory(context), backlog=int(backlog),
                              interface=interface)


def server_endpoint(reactor, description: str):
    """Like serverFromString, with ``tls:`` meaning our reloading directory endpoint and
    ``ssl:`` getting the same TLS 1.2+ ECDHE-AEAD policy; other types go to Twisted."""
    if description.startswith(("tls:", "ssl:")):
        args, kwargs = parse_endpoint_description(description)  # Twisted's own escaping rules
        if args[0] == "ssl":
            return ssl_file_endpoint(reactor, *args[1:], **kwargs)
        return tls_directory_endpoint(reactor, *args[1:], **kwargs)
    return endpoints.serverFromString(reactor, description)
