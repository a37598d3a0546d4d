"""Recorded exchanges (``tests/fixtures/<platform>/**/*.json``) served by pytest-httpserver.

An exchange is ``{"request": {"method", "path", "query", "headers"?}, "response":
{"status", "headers", "body"}}``; a request is answered only when its query matches
exactly (and its recorded ``headers``, e.g. another token's ``Authorization``, are sent).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_httpserver import HTTPServer


class Recordings:
    """The recorded exchanges below one fixtures folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self, name: str) -> dict[str, Any]:
        return json.loads((self.folder / name).read_text(encoding="utf-8"))

    def serve(
        self,
        server: HTTPServer,
        exchange: dict[str, Any],
        *,
        once: bool = False,
        headers: dict[str, str] | None = None,
        match: dict[str, str] | None = None,
    ) -> None:
        """Answer the recorded request with the recorded response (string bodies verbatim).

        ``headers`` are added to the response; ``match``: the request headers it must carry
        (default: the recorded request's ``headers``, if any).
        """
        req, resp = exchange["request"], exchange["response"]
        body = resp["body"]
        data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        hdrs = {**resp["headers"], **(headers or {})}
        content_type = hdrs.pop("Content-Type", None)
        expect = server.expect_oneshot_request if once else server.expect_request
        expect(
            req["path"],
            method=req["method"],
            query_string=req["query"],
            headers=match if match is not None else req.get("headers"),
        ).respond_with_data(
            data.encode("utf-8"), status=resp["status"], headers=hdrs, content_type=content_type
        )

    def serve_folder(
        self,
        server: HTTPServer,
        folder: str,
        skip: frozenset[str] | set[str] = frozenset(),
        match: dict[str, str] | None = None,
    ) -> None:
        """Every exchange of ``folder`` but the file stems in ``skip``."""
        for path in sorted((self.folder / folder).glob("*.json")):
            if path.stem not in skip:
                self.serve(server, self.load(f"{folder}/{path.name}"), match=match)
