"""Shared by the HTTP client and platform tests: a client that records its waits."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading

import pytest

from socialpulse.http import HttpClient, HttpPolicy


class Sleeps(list):
    """Records the client's waits instead of sleeping them (the server's behaviour is real)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def fast_client(sleeps: Sleeps) -> HttpClient:
    """Short timeouts, one retry, waits recorded in ``sleeps``: a test never really waits."""
    return HttpClient(policy=HttpPolicy(read_timeout=0.5, retries=1, backoff=0.01), sleep=sleeps)


def limited_client(sleeps: Sleeps, **policy: float) -> HttpClient:
    """:func:`fast_client` with a short deadline (1 s) and whatever else ``policy`` sets."""
    limits = {"read_timeout": 0.5, "retries": 1, "backoff": 0.01, "deadline": 1.0, **policy}
    return HttpClient(policy=HttpPolicy(**limits), sleep=sleeps)


# -- a raw HTTP server: for what a well-behaved server cannot do (drip, reset, truncate) ----


class RawServer:
    """A TCP server on 127.0.0.1 speaking HTTP by hand, one thread per connection.

    ``respond(server, conn, path)`` answers one request on the socket ``conn`` and returns
    whether the connection stays open for the next request (keep-alive). It may misbehave
    at will: drip bytes, stop half-way, reset the connection. ``stopping`` is set at
    teardown, so that an endless drip ends; ``connections`` counts the connections
    accepted so far (the first one is number 1).
    """

    def __init__(self, respond) -> None:
        self.respond = respond
        self.stopping = threading.Event()
        self.paths: list[str] = []  # the path of every request, in order
        self.connections = 0
        self.sent = 0  # bytes sent with send() below
        self._lock = threading.Lock()
        self._socks: list = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def send(self, conn, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.sent += len(data)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # to see ``stopping``
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self.connections += 1
                self._socks.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn) -> None:
        buffer = b""
        try:
            while not self.stopping.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                with self._lock:
                    self.paths.append(path)
                if not self.respond(self, conn, path):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        self.stopping.set()
        for t in self._threads[:1]:
            t.join(timeout=5)  # the accepting thread first: no new connection after this
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout=5)


def http_head(
    status: int = 200, headers: dict[str, str] | None = None, close: bool = True
) -> bytes:
    """A response's status line and headers (``Connection: close`` unless ``close`` is False)."""
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Status'}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def http_json(data, status: int = 200, close: bool = True) -> bytes:
    """A complete JSON response with its Content-Length."""
    body = json.dumps(data).encode()
    head = http_head(
        status, {"Content-Type": "application/json", "Content-Length": str(len(body))}, close
    )
    return head + body


def reset(conn) -> None:
    """Close the connection with a TCP reset (RST) instead of an orderly end."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@pytest.fixture
def raw_server():
    """``raw_server(respond)`` starts a :class:`RawServer`; all are stopped at teardown."""
    servers: list[RawServer] = []

    def start(respond) -> RawServer:
        server = RawServer(respond)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
