"""Shared helpers for the web role's tests (no tests here): a recording IJobQueue, a config, a live Site."""
from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tests.support.queues import RecordingQueue
from ymds.config import load_config
from ymds.links import new_label, sign_token
from ymds.metrics import Registry
from ymds.web.site import make_site

SECRET = "01234567890ABCDEF01234567890"
LINK_SECRET = "link-secret-for-tests-0123456789"
WALLET = "410011234567890"
NOW = 1_800_000_000


def make_config(port: int, **sections):
    raw = {
        "server": {"endpoint": f"tcp:{port}:interface=127.0.0.1", "public_url": f"http://127.0.0.1:{port}", "max_body": 4096},
        "yoomoney": {"wallet": WALLET, "notification_secret": SECRET, "signature": "auto"},
        "links": {"secret": LINK_SECRET, "ttl": "3d"},
        "plans": [{"id": "month", "title": "1 month", "price": "199.00", "days": 30}],
        "donations": {"min": "10.00", "max": "1000.00"},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return load_config(raw=raw, env={})


class Invoices:
    """A tiny stand-in for billing's invoice_status/create_donation answers."""

    def __init__(self, config, clock):
        self.config = config
        self.clock = clock
        self.invoices: dict[str, dict] = {}

    def add(self, amount="150.00", status="open", kind="donation", plan=None, ttl=3600) -> tuple[str, str]:
        label = new_label()
        expires = int(self.clock.seconds()) + ttl
        self.invoices[label] = {
            "label": label, "kind": kind, "plan": plan, "chat_id": None, "amount": Decimal(amount),
            "status": status, "description": "", "expires_at": "2027-01-15T08:00:00+00:00", "paid_at": None,
        }
        return label, sign_token(self.config.links.secret, label, expires)

    def invoice_status(self, args):
        found = self.invoices.get(args["label"])
        return dict(found) if found is not None else None  # a fresh copy, as from the queue

    def create_donation(self, args):
        label, token = self.add(str(args["amount"]))
        return {"label": label, "url": f"{self.config.server.public_url}/pay/{token}", "expires_at": "2027-01-15T08:00:00+00:00"}


@implementer(IPolicyForHTTPS)
class TrustAnything:
    def creatorForNetloc(self, hostname, port):
        return _Creator()


@implementer(IOpenSSLClientConnectionCreator)
class _Creator:
    def clientConnectionForTLS(self, tlsProtocol):
        from OpenSSL import SSL
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_verify(SSL.VERIFY_NONE, lambda *a: True)
        connection = SSL.Connection(context, None)
        connection.set_app_data(tlsProtocol)
        return connection


class Client:
    """Non-persistent HTTP(S) requests against a live server on loopback."""

    def __init__(self, base: str, tls: bool = False):
        self.base = base
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, contextFactory=TrustAnything(), pool=pool) if tls else Agent(reactor, pool=pool)

    async def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        from twisted.web.client import FileBodyProducer
        from io import BytesIO
        h = Headers({k.encode() if isinstance(k, str) else k: [v.encode() if isinstance(v, str) else v]
                     for k, v in (headers or {}).items()})
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        response = await self.agent.request(method.encode(), (self.base + path).encode(), h, producer)
        content = await readBody(response)
        return response, content


def header(response, name: str) -> str | None:
    values = response.headers.getRawHeaders(name.encode())
    return values[0].decode() if values else None


class LiveSite:
    """make_site on a loopback port; app clock is a Clock; IO on the real reactor."""

    def __init__(self, testcase, config=None, queue=None, checks=None, sandbox=None, site_reactor=None, **options):
        from tests.support.redis_server import free_port
        self.port = free_port()
        self.config = config or make_config(self.port)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.queue = queue or RecordingQueue()
        self.metrics = Registry()
        self.invoices = Invoices(self.config, self.clock)
        if isinstance(self.queue, RecordingQueue):
            self.queue.handlers.update(invoice_status=self.invoices.invoice_status,
                                       create_donation=self.invoices.create_donation)
        self.site = make_site(site_reactor or reactor, self.config, self.queue, self.metrics, checks or {},
                              sandbox=sandbox, clock=self.clock, **options)
        self.listening = reactor.listenTCP(self.port, self.site, interface="127.0.0.1")
        testcase.addCleanup(self.listening.stopListening)
        self.client = Client(f"http://127.0.0.1:{self.port}")

    def request(self, method, path, body=None, headers=None):
        return defer.Deferred.fromCoroutine(self.client.request(method, path, body, headers))
