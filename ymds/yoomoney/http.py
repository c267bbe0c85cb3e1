"""A treq client with its own connection pool, TLS trust options and bounded bodies.

Used by the wallet API client, the sandbox's notifier and the test-notification command.
Production trusts the system CAs.  The demo's self-signed certificate can be trusted by
giving its PEM (``trust_pem``) or, for loopback hosts only, by ``insecure_local_tls``.
"""

from __future__ import annotations

from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ymds.util.http import BodyTooLarge, read_body  # re-exported: callers import them from here

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedLocalTLS:
    """TLS without certificate checks: only ever chosen for loopback hosts."""

    def __init__(self, hostname: str):
        self._hostname = hostname
        self._context = ssl.CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, tlsProtocol):
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        if self._hostname not in ("127.0.0.1", "::1", "[::1]"):
            connection.set_tlsext_host_name(self._hostname.encode("idna"))
        return connection


@implementer(IPolicyForHTTPS)
class TrustPolicy:
    """System CAs, plus an extra trusted PEM certificate and/or unverified loopback."""

    def __init__(self, trust_pem: bytes | None = None, insecure_local_tls: bool = False):
        self._default = BrowserLikePolicyForHTTPS()
        self._extra = ssl.Certificate.loadPEM(trust_pem) if trust_pem else None
        self._insecure_local = insecure_local_tls

    def creatorForNetloc(self, hostname: bytes, port: int):
        name = hostname.decode("ascii")
        if self._insecure_local and name in LOCAL_HOSTS:
            return _UnverifiedLocalTLS(name)
        if self._extra is not None:
            return ssl.optionsForClientTLS(name, trustRoot=ssl.trustRootFromCertificates([self._extra]))
        return self._default.creatorForNetloc(hostname, port)


def make_http_client(
    reactor,
    pool: HTTPConnectionPool | None = None,
    trust_pem: bytes | None = None,
    insecure_local_tls: bool = False,
    connect_timeout: float = 10.0,
    persistent: bool = True,
) -> tuple[HTTPClient, HTTPConnectionPool]:
    """A treq HTTPClient over its own pool; returns (client, pool) so the owner can close the pool."""
    if pool is None:
        pool = HTTPConnectionPool(reactor, persistent=persistent)
        pool.maxPersistentPerHost = 4
        pool.cachedConnectionTimeout = 60
        pool.retryAutomatically = False  # never resend a POST that may have been processed
    agent = Agent(reactor, contextFactory=TrustPolicy(trust_pem, insecure_local_tls),
                  connectTimeout=connect_timeout, pool=pool)
    return HTTPClient(agent), pool


__all__ = ["make_http_client", "read_body", "TrustPolicy", "BodyTooLarge", "LOCAL_HOSTS"]
