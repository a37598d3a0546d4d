"""The shared HTTP client against a real HTTP server on 127.0.0.1 (pytest-httpserver)."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
from werkzeug import Response

from socialpulse.http import HttpClient, HttpError, HttpPolicy, PayloadError, RateLimited


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
