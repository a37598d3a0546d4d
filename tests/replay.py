"""Serve recorded platform responses on 127.0.0.1: for end-to-end tests and offline demos.

An exchange is a recorded request and its response, in the format of the connectors'
fixtures (``tests/fixtures/mastodon``, ``tests/fixtures/bluesky``)::

    {"request": {"method": "GET", "path": "/api/v1/accounts/lookup", "query": {"acct": "x"}},
     "response": {"status": 200, "headers": {...}, "json": {...}}}    # or "body" / "text"

The first exchange whose path matches and whose ``query`` items are all in the request
answers (other query parameters are ignored). ``{{base}}`` in bodies and headers becomes
the server's base URL, so recorded links point back at the replay server. Unmatched
requests get a 404 and are listed in ``server.unmatched``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, exchanges: list[dict[str, Any]] | None = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.exchanges: list[dict[str, Any]] = list(exchanges or [])
        self.requests: list[str] = []
        #: the headers of each request, in the order of ``requests``
        self.headers: list[dict[str, str]] = []
        self.unmatched: list[str] = []

    @classmethod
    def from_folder(cls, folder: Path, port: int = 0) -> ReplayServer:
        files = sorted(Path(folder).rglob("*.json"))
        docs = [json.loads(f.read_text(encoding="utf-8")) for f in files]
        return cls([d for d in docs if isinstance(d, dict) and "request" in d], port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def render(self, text: str) -> str:
        return text.replace("{{base}}", self.base)

    def start(self) -> ReplayServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def match(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The first exchange whose path matches and whose query items (and ``headers``,
        e.g. the ``Authorization`` a token travels in) are all in the request."""
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        for exchange in self.exchanges:
            request = exchange["request"]
            if request.get("path") != path:
                continue
            wanted = request.get("query") or {}
            if not all(str(v) in query.get(k, []) for k, v in wanted.items()):
                continue
            if all(sent.get(k.lower()) == v for k, v in (request.get("headers") or {}).items()):
                return exchange["response"]
        return None


class _Handler(BaseHTTPRequestHandler):
    server: ReplayServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        self.server.requests.append(self.path)
        self.server.headers.append(dict(self.headers.items()))
        response = self.server.match(parts.path, parse_qs(parts.query), dict(self.headers.items()))
        if response is None:
            self.server.unmatched.append(self.path)
            self._send(404, {"Content-Type": "application/json"}, b'{"error": "Record not found"}')
            return
        payload = response.get("json", response.get("body", response.get("text", "")))
        text = payload if isinstance(payload, str) else json.dumps(payload)
        body = self.server.render(text).encode()
        headers = {k: self.server.render(str(v)) for k, v in response.get("headers", {}).items()}
        self._send(int(response.get("status", 200)), headers, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep tests quiet
        pass
