"""The shared HTTP client against a real HTTP server on 127.0.0.1.

pytest-httpserver for well-behaved servers, :class:`tests.unit.conftest.RawServer` (HTTP
written by hand on a socket) for servers that drip, reset or stop half-way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import threading
import time

import pytest
from werkzeug import Response

from socialpulse import http
from socialpulse.http import (
    BudgetExceeded,
    HttpClient,
    HttpError,
    HttpPolicy,
    PayloadError,
    RateLimited,
    ResponseTooLarge,
)
from tests.unit.conftest import http_head, http_json, limited_client, reset


@pytest.fixture
def client(sleeps):
    return HttpClient(policy=HttpPolicy(read_timeout=0.5, retries=2, backoff=0.1), sleep=sleeps)


def test_json_is_decoded(httpserver, client):
    httpserver.expect_request("/api/x", query_string="a=1").respond_with_json({"ok": True})
    data, response = client.get_json(httpserver.url_for("/api/x"), params={"a": 1})
    assert data == {"ok": True} and response.status_code == 200


def test_429_waits_as_told_then_goes_on(httpserver, client, sleeps):
    httpserver.expect_ordered_request("/r").respond_with_json(
        {}, status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/r").respond_with_json({"n": 1})
    data, _ = client.get_json(httpserver.url_for("/r"))
    assert data == {"n": 1}
    assert sleeps == [7.0]
    assert client.requests == 2


def test_429_asking_for_too_long_a_wait_is_an_error(httpserver, client, sleeps):
    httpserver.expect_request("/r").respond_with_json(
        {}, status=429, headers={"Retry-After": "3600"}
    )
    with pytest.raises(RateLimited, match=r"asks to wait 3600 s"):
        client.get(httpserver.url_for("/r"))
    assert sleeps == []


def test_500_is_retried_with_backoff_then_succeeds(httpserver, client, sleeps):
    httpserver.expect_ordered_request("/s").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request("/s").respond_with_data("oops", status=503)
    httpserver.expect_ordered_request("/s").respond_with_json([1, 2])
    data, _ = client.get_json(httpserver.url_for("/s"), expect=list)
    assert data == [1, 2]
    # exponential: 0.1 then 0.2, each with up to 25 % jitter
    assert len(sleeps) == 2
    assert 0.1 <= sleeps[0] <= 0.125 and 0.2 <= sleeps[1] <= 0.25


def test_persistent_500_gives_up_after_the_retries(httpserver, client):
    httpserver.expect_request("/s").respond_with_data("oops", status=502)
    with pytest.raises(HttpError, match=r"HTTP 502 after 3 attempts") as err:
        client.get(httpserver.url_for("/s"))
    assert err.value.status == 502 and "/s" in str(err.value)


def test_timeout_is_retried_and_then_named(httpserver, client):
    def slow(request):
        time.sleep(1.0)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(HttpError, match=r"timed out after 3 attempts"):
        client.get(httpserver.url_for("/slow"))


def test_html_error_page_with_200_is_a_payload_error(httpserver, client):
    httpserver.expect_request("/h").respond_with_data(
        "<html><body>Maintenance</body></html>", content_type="text/html"
    )
    with pytest.raises(
        PayloadError, match=r"expected JSON, got text/html: '<html><body>Maintenance"
    ):
        client.get_json(httpserver.url_for("/h"))


def test_truncated_json_is_a_payload_error(httpserver, client):
    httpserver.expect_request("/t").respond_with_data(
        '{"id": "1", "acc', content_type="application/json"
    )
    with pytest.raises(PayloadError, match=r"invalid JSON"):
        client.get_json(httpserver.url_for("/t"))


def test_json_of_the_wrong_shape_is_a_payload_error(httpserver, client):
    httpserver.expect_request("/w").respond_with_json([1])
    with pytest.raises(PayloadError, match=r"expected a JSON dict, got list"):
        client.get_json(httpserver.url_for("/w"))


def test_404_is_not_retried_and_says_not_found(httpserver, client, sleeps):
    httpserver.expect_request("/missing").respond_with_json(
        {"error": "Record not found"}, status=404
    )
    with pytest.raises(HttpError, match=r"HTTP 404 not found: Record not found") as err:
        client.get(httpserver.url_for("/missing"))
    assert err.value.status == 404 and sleeps == [] and client.requests == 1


def test_mastodon_rate_limit_headers_pace_the_next_request(httpserver, client, sleeps):
    reset = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).isoformat()
    headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": reset}
    httpserver.expect_request("/p").respond_with_json({}, headers=headers)
    client.get(httpserver.url_for("/p"))
    assert sleeps == []
    client.get(httpserver.url_for("/p"))  # only the reserve is left: wait for the reset
    assert len(sleeps) == 1 and 28 <= sleeps[0] <= 30


def test_ietf_rate_limit_headers_spread_the_last_tenth_of_the_budget(httpserver, client, sleeps):
    headers = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "21", "RateLimit-Reset": "40"}
    httpserver.expect_request("/b").respond_with_json({}, headers=headers)
    client.get(httpserver.url_for("/b"))
    client.get(httpserver.url_for("/b"))
    # 20 spare requests for about 40 s: about 2 s apart
    assert len(sleeps) == 1 and 1.9 <= sleeps[0] <= 2.0


def test_a_plenty_budget_does_not_slow_anything_down(httpserver, client, sleeps):
    headers = {
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "250",
        "X-RateLimit-Reset": "60",
    }
    httpserver.expect_request("/q").respond_with_json({}, headers=headers)
    for _ in range(3):
        client.get(httpserver.url_for("/q"))
    assert sleeps == []


def test_unreachable_host_is_named(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(HttpError, match=rf"connection failed after 3 attempts.*127.0.0.1:{port}"):
        client.get(f"http://127.0.0.1:{port}/x")


# -- limits: the defaults -------------------------------------------------------------------


def test_default_limits_and_no_in_process_host_semaphore():
    policy = HttpPolicy()
    assert policy.deadline == 60.0  # per attempt: connect + headers + body
    assert policy.max_bytes == 8 * 1024 * 1024
    assert policy.account_budget == 600.0  # 10 minutes per account
    # concurrency per platform is the Airflow pools' business, not a semaphore per process
    assert "per_host" not in {f.name for f in dataclasses.fields(HttpPolicy)}
    assert not hasattr(http, "_SEMAPHORES") and not hasattr(http, "_host_semaphore")


# -- the deadline: a server that drips ------------------------------------------------------

JSON_HEAD = {"Content-Type": "application/json"}


def drip_forever(server, conn, data: bytes = b" ", every: float = 0.1) -> None:
    """Send ``data`` byte by byte, one every ``every`` s (far below the 0.5 s read timeout)."""
    while not server.stopping.is_set():
        for byte in data:
            server.send(conn, bytes([byte]))
            time.sleep(every)


@pytest.mark.timeout(20)  # without a deadline the client would wait forever
def test_a_body_dripping_a_byte_at_a_time_is_cut_at_the_deadline(raw_server, sleeps):
    def respond(server, conn, path):
        server.send(conn, http_head(200, {**JSON_HEAD, "Content-Length": "100000"}))
        drip_forever(server, conn)
        return False

    server = raw_server(respond)
    client = limited_client(sleeps, deadline=1.0, retries=1)
    with pytest.raises(
        HttpError,
        match=r"^deadline of 1 s exceeded after 2 attempts: .*\(http://127\.0\.0\.1:\d+/drip\)$",
    ):
        client.get(server.url("/drip"))
    assert server.paths == ["/drip", "/drip"]  # retried like a timeout
    assert len(sleeps) == 1  # one backoff between the two attempts


@pytest.mark.timeout(20)
def test_headers_dripping_a_byte_at_a_time_are_cut_at_the_deadline(raw_server, sleeps):
    head = http_head(200, {**JSON_HEAD, "Content-Length": "2", "X-Padding": "x" * 2000})

    def respond(server, conn, path):
        drip_forever(server, conn, head, every=0.05)  # 2000 bytes: 100 s
        return False

    server = raw_server(respond)
    with pytest.raises(HttpError, match=r"^deadline of 1 s exceeded after 2 attempts"):
        limited_client(sleeps, deadline=1.0).get(server.url("/slow-headers"))
    assert server.paths == ["/slow-headers"] * 2


@pytest.mark.timeout(20)
def test_a_deadline_hit_is_retried_and_the_retry_can_succeed(raw_server, sleeps):
    def respond(server, conn, path):
        if server.connections == 1:
            server.send(conn, http_head(200, {**JSON_HEAD, "Content-Length": "100"}))
            drip_forever(server, conn)
        else:
            server.send(conn, http_json({"ok": True}))
        return False

    server = raw_server(respond)
    data, _ = limited_client(sleeps, deadline=1.0).get_json(server.url("/x"))
    assert data == {"ok": True}
    assert server.paths == ["/x", "/x"] and len(sleeps) == 1


# -- the account budget ---------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_the_account_budget_ends_the_retries_and_names_the_account(raw_server, sleeps):
    def respond(server, conn, path):
        server.send(conn, http_head(200, {**JSON_HEAD, "Content-Length": "100"}))
        drip_forever(server, conn)
        return False

    server = raw_server(respond)
    # five retries allowed, but the budget (1.5 s) ends the second attempt half-way
    client = limited_client(sleeps, deadline=1.0, retries=5, account_budget=1.5)
    with (
        pytest.raises(
            BudgetExceeded,
            match=r"^time budget of 1\.5 s for account @bakery@social\.example \(baeckerei-korn\) "
            r"used up after 2 requests: a request was cut off at its end "
            r"\(HttpPolicy\.account_budget\) \(http://127\.0\.0\.1:\d+/timeline\)$",
        ),
        client.account_budget("account @bakery@social.example (baeckerei-korn)"),
    ):
        client.get(server.url("/timeline"))
    assert server.paths == ["/timeline"] * 2
    # the budget ends with its block: the next account starts afresh
    assert client._time_budget() is None


def test_a_wait_that_would_pass_the_budget_is_not_started(httpserver, sleeps):
    httpserver.expect_request("/r").respond_with_json({}, status=429, headers={"Retry-After": "5"})
    client = limited_client(sleeps)
    with (
        pytest.raises(
            BudgetExceeded,
            match=r"^time budget of 2 s for feed X used up after 1 request: waiting 5\.0 s "
            r"\(HTTP 429\) would pass it",
        ),
        client.account_budget("feed X", seconds=2),
    ):
        client.get(httpserver.url_for("/r"))
    assert sleeps == []


# -- the size cap ---------------------------------------------------------------------------


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.mark.timeout(60)
def test_a_body_larger_than_the_cap_is_refused_without_reading_the_rest(raw_server, sleeps):
    total = 64 * 1024 * 1024  # sent as chunks, without a Content-Length
    finished = threading.Event()

    def respond(server, conn, path):
        try:
            server.send(conn, http_head(200, {**JSON_HEAD, "Transfer-Encoding": "chunked"}))
            frame = chunked(b"x" * 65536)
            for _ in range(total // 65536):
                server.send(conn, frame)
            server.send(conn, b"0\r\n\r\n")
        finally:
            finished.set()
        return False

    server = raw_server(respond)
    client = limited_client(sleeps, max_bytes=1_000_000)
    with pytest.raises(
        ResponseTooLarge,
        match=r"^response larger than the cap of 1000000 bytes \(HttpPolicy\.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES\); "
        r"stopped reading after \d+ bytes \(http://127\.0\.0\.1:\d+/big\)$",
    ):
        client.get(server.url("/big"))
    assert finished.wait(10)  # the server gave up: the client closed the connection
    assert server.sent < total / 2  # (the rest was never read; socket buffers hold a few MB)
    assert server.paths == ["/big"]  # not retried: it would be as large again


@pytest.mark.timeout(20)
def test_a_content_length_above_the_cap_is_refused_before_reading(raw_server, sleeps):
    def respond(server, conn, path):
        server.send(conn, http_head(200, {**JSON_HEAD, "Content-Length": "200000000"}))
        server.stopping.wait(10)  # and then nothing: reading would time out
        return False

    server = raw_server(respond)
    with pytest.raises(
        ResponseTooLarge,
        match=r"^response of 200000000 bytes \(Content-Length\) is larger than the cap of "
        r"1000000 bytes \(HttpPolicy\.max_bytes, SOCIALPULSE_HTTP_MAX_BYTES\); not read \(http://.*/huge\)$",
    ) as err:
        limited_client(sleeps, max_bytes=1_000_000).get(server.url("/huge"))
    assert err.value.status == 200 and isinstance(err.value, PayloadError)
    assert server.paths == ["/huge"] and sleeps == []


@pytest.mark.timeout(20)
def test_callers_get_the_body_and_connections_are_released_or_closed(raw_server, sleeps):
    def respond(server, conn, path):
        if path == "/big":  # 3 MB in chunks, more than the cap: never read to its end
            server.send(conn, http_head(200, {**JSON_HEAD, "Transfer-Encoding": "chunked"}, False))
            for _ in range(48):
                server.send(conn, chunked(b"y" * 65536))
            server.send(conn, b"0\r\n\r\n")
        else:
            server.send(conn, http_json({"path": path, "text": "Grüße"}, close=False))
        return True  # keep-alive

    server = raw_server(respond)
    client = limited_client(sleeps, max_bytes=1_000_000)
    first = client.get(server.url("/a"))
    assert first.json() == {"path": "/a", "text": "Grüße"}
    assert first.content.startswith(b'{"path": "/a"') and '"Gr\\u00fc\\u00dfe"' in first.text
    client.get(server.url("/b"))
    assert server.connections == 1  # read to its end: the connection went back to the pool
    with pytest.raises(ResponseTooLarge):
        client.get(server.url("/big"))
    data, _ = client.get_json(server.url("/c"))
    assert data["path"] == "/c"
    # the refused response's connection was closed (its rest unread), not reused
    assert server.connections == 2
    assert server.paths == ["/a", "/b", "/big", "/c"]


# -- bodies broken while being read ---------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_connection_reset_mid_body_is_retried_then_named(raw_server, sleeps):
    def respond(server, conn, path):
        server.send(conn, http_head(200, {**JSON_HEAD, "Content-Length": "1000"}) + b'[{"id": ')
        time.sleep(0.2)  # the client has the headers and waits for the rest
        reset(conn)
        return False

    server = raw_server(respond)
    client = HttpClient(policy=HttpPolicy(read_timeout=0.5, retries=2, backoff=0.1), sleep=sleeps)
    with pytest.raises(
        HttpError,
        match=r"^response body broken after 3 attempts: ChunkedEncodingError: .*"
        r"\(http://127\.0\.0\.1:\d+/reset\?limit=40\)$",
    ):
        client.get(server.url("/reset"), params={"limit": 40})
    assert server.paths == ["/reset?limit=40"] * 3 and len(sleeps) == 2


@pytest.mark.timeout(20)
def test_a_truncated_chunked_body_is_retried_and_the_retry_can_succeed(raw_server, sleeps):
    def respond(server, conn, path):
        if server.connections == 1:  # a chunk of 0x40 bytes announced, 9 sent, then the end
            head = http_head(200, {**JSON_HEAD, "Transfer-Encoding": "chunked"})
            server.send(conn, head + b'40\r\n{"ok": tr')
        else:
            server.send(conn, http_json({"ok": True}))
        return False

    server = raw_server(respond)
    data, _ = limited_client(sleeps).get_json(server.url("/t"))
    assert data == {"ok": True}
    assert server.paths == ["/t", "/t"] and len(sleeps) == 1


def test_a_body_shorter_than_its_content_length_is_retried_then_named(raw_server, sleeps):
    def respond(server, conn, path):
        server.send(conn, http_head(200, {**JSON_HEAD, "Content-Length": "500"}) + b'{"a": 1')
        return False  # an orderly end after 7 of 500 bytes

    server = raw_server(respond)
    with pytest.raises(
        HttpError, match=r"^response body broken after 2 attempts: .*IncompleteRead"
    ):
        limited_client(sleeps).get(server.url("/short"))


def test_undecodable_gzip_is_retried_then_named(httpserver, client):
    httpserver.expect_request("/gz").respond_with_data(
        b"this is not gzip", content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(
        HttpError, match=r"^response body broken after 3 attempts: ContentDecodingError: .*/gz\)$"
    ):
        client.get(httpserver.url_for("/gz"))
    assert client.requests == 3


def test_other_request_errors_are_http_errors_naming_the_url(httpserver, client, sleeps):
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    with pytest.raises(HttpError, match=r"^TooManyRedirects: Exceeded 30 redirects\. .*/loop\)$"):
        client.get(httpserver.url_for("/loop"))
    assert sleeps == []  # not retried
