"""A loopback TCP proxy that can hold the server's replies back (threads, no reactor).

Used to stop a process exactly between "the command reached the server" and "the process
saw the answer": with ``hold_replies()`` every byte from the upstream server is kept, so a
web node's enqueue script runs in Redis but the node never learns it, never answers its
client, and can then be killed.  ``release()`` forwards what was held.
"""
from __future__ import annotations

import select
import socket
import threading

from tests.support.redis_server import free_port


class TCPProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._holding = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.bytes_up = 0       # client -> server
        self.bytes_held = 0     # server -> client, kept back
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"proxy:{self.port}")
        self._thread.start()

    def hold_replies(self) -> None:
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        held: list[bytes] = []
        try:
            while not self._stopped.is_set():
                readable, _, _ = select.select([client, server], [], [], 0.05)
                if held and not self._holding.is_set():
                    client.sendall(b"".join(held))
                    held.clear()
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        self.bytes_up += len(data)
                        server.sendall(data)
                    elif self._holding.is_set():
                        held.append(data)
                        self.bytes_held += len(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, server):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for client, server in self._pairs:
                for sock in (client, server):
                    try:
                        sock.close()
                    except OSError:
                        pass
