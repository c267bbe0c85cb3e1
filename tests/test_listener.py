"""Graceful stop of the web listener, and ordered stop of service containers."""
import socket
import time

from twisted.application.service import Service
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThread
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ymds.services import SequentialMultiService
from ymds.web.listener import TrackingSite, WebListener


class Slow(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.arrived = Deferred()
        self.requests = []

    def render_GET(self, request):
        self.requests.append(request)
        self.arrived.callback(None)
        return NOT_DONE_YET


def blocking_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"done"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def refused_soon(port: int) -> bool:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 2).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.01)
    return False


class ListenerTests(unittest.TestCase):
    async def test_in_flight_request_finishes_before_stop(self):
        slow = Slow()
        listener = WebListener(reactor, "tcp:0:interface=127.0.0.1", TrackingSite(slow), drain_timeout=10)
        listener.startService()
        port = (await listener.listening).getHost().port
        answer = deferToThread(blocking_get, port)
        await slow.arrived
        stopped = listener.stopService()
        # No new connections are accepted (the port closes on the next reactor turn)
        # while the old request is still served.
        self.assertTrue(await deferToThread(refused_soon, port))
        self.assertFalse(stopped.called)
        request = slow.requests[0]
        request.setHeader(b"content-length", b"4")
        request.write(b"done")
        request.finish()
        data = await answer
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
        await stopped
        self.assertEqual(listener.site.channels, set())

    async def test_drain_is_bounded(self):
        slow = Slow()
        listener = WebListener(reactor, "tcp:0:interface=127.0.0.1", TrackingSite(slow), drain_timeout=0.2)
        listener.startService()
        port = (await listener.listening).getHost().port
        answer = deferToThread(blocking_get, port)
        await slow.arrived
        await listener.stopService()  # the request never finishes: the connection is aborted
        try:
            data = await answer
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"")
        self.assertEqual(listener.site.channels, set())


class Recorder(Service):
    def __init__(self, name, log, wait=None):
        self.setName(name)
        self.log = log
        self.wait = wait

    def stopService(self):
        super().stopService()
        self.log.append(f"stop {self.name}")
        if self.wait is None:
            return succeed(None)
        return self.wait.addCallback(lambda _: self.log.append(f"stopped {self.name}"))


class SequentialTests(unittest.TestCase):
    def test_children_stop_one_after_another_in_reverse(self):
        log = []
        gate = Deferred()
        top = SequentialMultiService()
        Recorder("ledger", log).setServiceParent(top)
        Recorder("worker", log, gate).setServiceParent(top)
        top.startService()
        done = top.stopService()
        self.assertEqual(log, ["stop worker"])  # the ledger waits for the worker
        gate.callback(None)
        self.assertEqual(log, ["stop worker", "stopped worker", "stop ledger"])
        self.assertTrue(done.called)
