"""The web role's resource tree and Site.

``make_web_root`` builds the tree (pages, notification endpoint, /healthz, /static,
/metrics only with ``server.metrics_public``, and /sandbox when given) behind a wrapper
that puts the security headers on every response.  ``make_site`` wraps it in a Site with the body limit, request deadline and
idle timeout, and with the access log off (URLs carry pay tokens; our resources log their
decisions themselves).
"""

from __future__ import annotations

import mimetypes
import os
from typing import Mapping
from urllib.parse import urlsplit

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ymds.observability import METRICS_CONTENT_TYPE
from ymds.web.health import HealthResource
from ymds.web.http import LimitedRequest, TEXT_TYPE, send
from ymds.web.notify import NotifyResource
from ymds.web.pages import DonateResource, LandingResource, PayResource, ThanksResource, WebContext
from ymds.web.ratelimit import ClientAddress, TokenBucketLimiter

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


def content_security_policy(quickpay_url: str) -> bytes:
    parts = urlsplit(quickpay_url)
    form_action = "'self'"
    if parts.scheme in ("http", "https") and parts.netloc:
        form_action += f" {parts.scheme}://{parts.netloc}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
            f"base-uri 'none'; frame-ancestors 'none'; form-action {form_action}").encode("ascii")


class SecureHeaders(Resource):
    """Puts the security headers on every response, then hands over to the real tree."""

    def __init__(self, root: Resource, csp: bytes, client_address: ClientAddress):
        super().__init__()
        self._root = root
        self._csp = csp
        self._client_address = client_address

    def getChildWithDefault(self, path, request):
        request.setHeader(b"content-security-policy", self._csp)
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"x-frame-options", b"DENY")
        if request.isSecure() or self._client_address.via_trusted_https(request):
            request.setHeader(b"strict-transport-security", b"max-age=31536000")
        return self._root.getChildWithDefault(path, request)

    def render(self, request):  # only reached for a request without any path
        return self._root.render(request)


class StaticResource(Resource):
    """Our few static files, read once; no directory listings, nothing outside the folder."""

    isLeaf = True

    def __init__(self, directory: str = STATIC_DIR):
        super().__init__()
        self._files: dict[str, tuple[bytes, bytes]] = {}
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind.endswith("javascript"):
                    kind += "; charset=utf-8"
                with open(path, "rb") as f:
                    self._files[name] = (f.read(), kind.encode())

    def render_GET(self, request):
        name = b"/".join(request.postpath).decode("latin-1")
        found = self._files.get(name)
        if found is None:
            send(request, 404, b"Not Found\n", TEXT_TYPE)
        else:
            send(request, 200, found[0], found[1], cache=b"public, max-age=3600")
        return NOT_DONE_YET


class MetricsResource(Resource):
    """Prometheus text at exactly /metrics (sub-paths are 404), rendered synchronously.

    Mounted on the public listener only with ``server.metrics_public = true``.
    """

    isLeaf = True

    def __init__(self, metrics):
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request):
        if request.postpath not in ([], [b""]):
            send(request, 404, b"Not Found\n", TEXT_TYPE)
        else:
            send(request, 200, self._metrics.render().encode("utf-8"), METRICS_CONTENT_TYPE)
        return NOT_DONE_YET


class NotFound(Resource):
    isLeaf = True

    def __init__(self, ctx: WebContext):
        super().__init__()
        self._ctx = ctx

    def render(self, request):
        self._ctx.message(request, "other", 404)
        return NOT_DONE_YET


class WebRoot(Resource):
    def __init__(self, ctx: WebContext, children: Mapping[bytes, Resource]):
        super().__init__()
        self._ctx = ctx
        self._landing = LandingResource(ctx)
        for name, child in children.items():
            self.putChild(name, child)

    def getChild(self, path, request):
        if path == b"":
            return self._landing
        return NotFound(self._ctx)

    def render(self, request):
        return self._landing.render(request)


def make_web_root(reactor, config, queue, metrics, health_checks, sandbox=None, clock=None,
                  status_ttl: float = 1.0, donate_rate: tuple[float, float] = (0.2, 10),
                  refusal_rate: tuple[float, float] = (1.0, 30), quarantine_rate: tuple[float, float] = (5.0, 100),
                  max_clients: int = 10000, api=None, overlay=None, admin=None):
    """The web role's resource tree.

    ``queue`` provides IJobQueue; ``metrics`` is a ymds.metrics.Registry; ``health_checks``
    maps a name to ``async () -> (ok, detail)`` for /healthz; ``sandbox`` is the sandbox's
    Resource (mounted at /sandbox) or None; ``api`` the integration API's Resource (mounted
    at /api, see ymds.api.resource) or None; ``clock`` (default: the reactor) drives link
    expiry, caches and rate limits.  Rates are (tokens per second, burst): ``donate_rate``
    per address for POST /donate, ``refusal_rate`` per address for refused notifications,
    ``quarantine_rate`` overall for quarantined bodies.
    """
    clock = clock or reactor
    client_address = ClientAddress(config.server.trusted_proxies)
    ctx = WebContext(config, queue, clock, metrics, client_address,
                     TokenBucketLimiter(clock, *donate_rate, max_clients=max_clients), status_ttl=status_ttl)
    notify = NotifyResource(config, queue, clock, metrics, client_address,
                            TokenBucketLimiter(clock, *refusal_rate, max_clients=max_clients),
                            TokenBucketLimiter(clock, *quarantine_rate, max_clients=1))
    yoomoney = Resource()
    yoomoney.putChild(b"notify", notify)
    children: dict[bytes, Resource] = {
        b"donate": DonateResource(ctx),
        b"pay": PayResource(ctx),
        b"thanks": ThanksResource(ctx),
        b"yoomoney": yoomoney,
        b"healthz": HealthResource(reactor, health_checks),
        b"static": StaticResource(),
    }
    if config.server.metrics_public:
        # Off by default: the figures are the owner's revenue; server.metrics_endpoint
        # (loopback) serves them to Prometheus instead.  Without it /metrics... is a 404.
        children[b"metrics"] = MetricsResource(metrics)
    if sandbox is not None:
        children[b"sandbox"] = sandbox
    if api is not None:
        children[b"api"] = api
    if overlay is not None:  # issue 17: ymds.overlay.resource.OverlayResource
        children[b"overlay"] = overlay
    if admin is not None:  # issue 16: the owner's dashboard (ymds.admin.web.make_admin_resource)
        children[b"admin"] = admin
    return SecureHeaders(WebRoot(ctx, children), content_security_policy(config.yoomoney.quickpay_url), client_address)


def make_site(reactor, config, queue, metrics, health_checks, sandbox=None, clock=None, site_class=Site,
              timeout: float = 30.0, request_deadline: float = 30.0, **root_options) -> Site:
    """A Site over :func:`make_web_root` that a slow or oversized client cannot hold.

    ``timeout``: idle seconds before a connection is closed; ``request_deadline``: seconds a
    client has to send one whole request (headers and body) once it started; bodies over
    ``server.max_body`` get 413 before they are read.  ``site_class`` lets the caller use a
    Site subclass (e.g. ymds.web.listener.TrackingSite).
    """
    root = make_web_root(reactor, config, queue, metrics, health_checks, sandbox=sandbox, clock=clock, **root_options)
    request_class = type("ServerRequest", (LimitedRequest,),
                         {"max_body": config.server.max_body, "request_deadline": request_deadline})
    # Twisted parses every form POST body into request.args; only the sandbox reads them
    # (our resources read the body once themselves), so skip that work without it.
    site = site_class(root, requestFactory=request_class, timeout=timeout, reactor=reactor,
                      parsePOSTFormSubmission=sandbox is not None)
    site.displayTracebacks = False
    site.log = lambda request: None  # no access log: URLs carry pay tokens
    return site
