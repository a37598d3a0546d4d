"""The shared Meta Graph API client (``socialpulse.platforms.graph``) against a real HTTP
server on 127.0.0.1 (pytest-httpserver).

The client's waits (rate-limit retries, pacing) go through the HttpClient's ``sleep``,
recorded in ``sleeps`` (tests/unit/conftest.py): nothing really waits. The error bodies
are Meta's wire format (``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``); the expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse.http import HttpError, PayloadError
from socialpulse.platforms.graph import (
    DEFAULT_BASE_URL,
    Graph,
    GraphError,
    GraphRateLimited,
    GraphSettings,
    InvalidMetric,
    NoAccess,
    TokenInvalid,
    base_url,
)
from tests.unit.conftest import Sleeps, fast_client

if TYPE_CHECKING:
    from pytest_httpserver import HTTPServer

TOKEN = "EAAGtokenSECRET123"
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
JSON = "application/json; charset=UTF-8"


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    return httpserver_ipv4


def graph(server: HTTPServer, sleeps: Sleeps, **extra: Any) -> Graph:
    conn = {"host": f"http://127.0.0.1:{server.port}", "password": TOKEN, "extra": extra}
    return Graph(fast_client(sleeps), GraphSettings.from_connection(conn, "facebook_default"))


def error_body(message: str, code: int, subcode: int | None = None, kind: str = "OAuthException"):
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "AbCdEf123"
    return {"error": error}


def respond(server: HTTPServer, path: str, body: Any, status: int = 200, once: bool = False, **kw):
    expect = server.expect_oneshot_request if once else server.expect_request
    headers = kw.pop("headers", None)
    expect(path, **kw).respond_with_data(
        json.dumps(body), status=status, content_type=JSON, headers=headers
    )


def queries(server: HTTPServer) -> list[str]:
    return [request.query_string.decode() for request, _ in server.log]


def usage(**fields: float) -> str:
    return json.dumps(fields)


def buc(**fields: float) -> str:
    return json.dumps({"104512345678901": [{"type": "pages", **fields}]})


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ({}, DEFAULT_BASE_URL),
        ({"host": "graph.facebook.com"}, "https://graph.facebook.com"),
        ({"host": "127.0.0.1", "port": 8080, "schema": "http"}, "http://127.0.0.1:8080"),
        ({"host": "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080"),
        # a version in the host is dropped: the connection's api_version wins
        ({"host": "https://proxy.example/graph/v19.0"}, "https://proxy.example/graph"),
    ],
)
def test_the_base_url_comes_from_the_connection(conn, expected):
    assert base_url(conn) == expected


def test_settings_read_version_token_and_secret():
    s = GraphSettings.from_connection(
        {"password": TOKEN, "extra": json.dumps({"api_version": "25.0", "app_secret": SECRET})},
        "facebook_default",
    )
    assert (s.version, s.token, s.app_secret, s.conn_id) == (
        "v25.0",
        TOKEN,
        SECRET,
        "facebook_default",
    )
    assert GraphSettings.from_connection(None, "x").version == "v26.0"
    with pytest.raises(ValueError, match=r"api_version 'latest' is not a Graph API version"):
        GraphSettings.from_connection({"extra": {"api_version": "latest"}}, "facebook_default")
    with pytest.raises(ValueError, match=r"connection facebook_default: extra is not valid JSON"):
        GraphSettings.from_connection({"extra": "{nope"}, "facebook_default")


def test_no_token_is_a_token_error_naming_the_connection(sleeps):
    settings = GraphSettings.from_connection({"password": ""}, "facebook_baeckerei_nord")
    with pytest.raises(
        TokenInvalid, match=r"connection facebook_baeckerei_nord holds no access token"
    ):
        Graph(fast_client(sleeps), settings)


# -- the token: in the header only ---------------------------------------------------------


def test_the_token_goes_in_the_header_never_in_the_query(server, sleeps):
    respond(
        server,
        "/v26.0/baeckereinord",
        {"id": "104512345678901", "followers_count": 2480},
        query_string={"fields": "id,followers_count"},
        headers={"X-App-Usage": usage(call_count=1, total_cputime=1, total_time=1)},
    )
    g = graph(server, sleeps)
    page = g.get("baeckereinord", {"fields": "id,followers_count", "after": None})
    assert page == {"id": "104512345678901", "followers_count": 2480}
    [(request, _)] = server.log
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.query_string.decode() == "fields=id%2Cfollowers_count"  # None left out
    assert g.requests == 1 and sleeps == []


def test_messages_never_hold_the_token(server, sleeps):
    # Meta quotes a malformed token in its message: the message is redacted
    respond(
        server,
        "/v26.0/me",
        error_body(f"Malformed access token {TOKEN}", 190),
        status=400,
    )
    # a 5xx: the shared client's HttpError, re-raised under the URL without credentials
    server.expect_request("/v26.0/broken").respond_with_data("oops", status=502)
    g = graph(server, sleeps, app_secret=SECRET)
    with pytest.raises(TokenInvalid) as token_error:
        g.get("me", {"fields": "id"})
    with pytest.raises(HttpError) as http_error:
        g.get("broken")
    proof = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    for exc in (token_error.value, http_error.value):
        text = f"{exc} {exc.url}"
        assert TOKEN not in text and SECRET not in text and proof not in text, text
    assert "Malformed access token ***" in str(token_error.value)
    assert str(http_error.value).startswith("HTTP 502 after 2 attempts (http://127.0.0.1:")
    assert g.redact(f"{TOKEN} {SECRET} {proof}") == "*** *** ***"


def test_app_secret_sends_the_proof(server, sleeps):
    # appsecret_proof = HMAC-SHA256(key = app secret, message = token), hex
    proof = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert len(proof) == 64
    respond(
        server,
        "/v26.0/me",
        {"id": "104512345678901"},
        query_string={"fields": "id", "appsecret_proof": proof},
    )
    g = graph(server, sleeps, app_secret=SECRET)
    assert g.proof == proof
    assert g.get("me", {"fields": "id"}) == {"id": "104512345678901"}
    # an error names the URL without the proof
    respond(
        server,
        "/v26.0/nosuchpage",
        error_body("(#803) Some of the aliases you requested do not exist: nosuchpage", 803),
        status=404,
    )
    with pytest.raises(GraphError) as info:
        g.get("nosuchpage", {"fields": "id"})
    assert info.value.url.endswith("/v26.0/nosuchpage?fields=id")
    assert proof not in str(info.value) and "appsecret_proof" not in str(info.value)


# -- paging --------------------------------------------------------------------------------


def test_next_links_lose_their_credentials_and_go_to_the_configured_host(server, sleeps):
    g = graph(server, sleeps)
    url, params = g.follow(
        "https://graph.facebook.com/v26.0/104512345678901/posts?access_token=EAAGtokenSECRET123"
        "&appsecret_proof=abc&pretty=0&fields=id%2Ccreated_time&limit=100&after=QVFIUmJ5"
    )
    assert url == f"http://127.0.0.1:{server.port}/v26.0/104512345678901/posts"
    assert params == {
        "pretty": "0",
        "fields": "id,created_time",
        "limit": "100",
        "after": "QVFIUmJ5",
    }
    # a proxy with a path prefix: the link's path goes below it
    proxied = Graph(
        fast_client(sleeps),
        GraphSettings.from_connection(
            {"host": "https://proxy.example/meta", "password": TOKEN}, "x"
        ),
    )
    url, _ = proxied.follow("https://graph.facebook.com/v26.0/1/posts?access_token=T")
    assert url == "https://proxy.example/meta/v26.0/1/posts"


def _page(data: list[dict], next_after: str | None, port: int) -> dict[str, Any]:
    paging: dict[str, Any] = {"cursors": {"before": "QkVGT1JF", "after": next_after or "RU5E"}}
    if next_after:
        paging["next"] = (
            f"https://graph.facebook.com/v26.0/1/posts?access_token={TOKEN}&limit=2&after={next_after}"
        )
    return {"data": data, "paging": paging}


def test_pages_follow_the_next_links(server, sleeps):
    respond(
        server,
        "/v26.0/1/posts",
        _page([{"id": "1_3"}, {"id": "1_2"}], "QUZURVIy", server.port),
        query_string={"limit": "2"},
    )
    respond(
        server,
        "/v26.0/1/posts",
        _page([{"id": "1_1"}], None, server.port),
        query_string={"limit": "2", "after": "QUZURVIy"},
    )
    g = graph(server, sleeps)
    got = [(n, [d["id"] for d in data]) for n, data in g.pages("1/posts", {"limit": 2}, 5, "posts")]
    assert got == [(1, ["1_3", "1_2"]), (2, ["1_1"])]
    assert g.paging_cut is False  # the edge ended: no next link on page 2
    assert queries(server) == ["limit=2", "limit=2&after=QUZURVIy"]  # no access_token
    assert all(TOKEN not in q for q in queries(server))


def test_the_page_limit_is_reported(server, sleeps):
    respond(
        server,
        "/v26.0/1/posts",
        _page([{"id": "1_3"}], "QUZURVIy", server.port),
        query_string={"limit": "2"},
    )
    g = graph(server, sleeps)
    assert [n for n, _ in g.pages("1/posts", {"limit": 2}, 1, "posts")] == [1]
    assert g.paging_cut is True  # a next link was left
    assert len(server.log) == 1


@pytest.mark.parametrize("repeats", ["itself", "the first page"])
def test_a_pagination_loop_is_an_error(server, sleeps, repeats):
    respond(
        server,
        "/v26.0/1/posts",
        _page([{"id": "1_3"}], "QUZURVIy", server.port),
        query_string={"limit": "2"},
    )
    loop = {
        "data": [{"id": "1_2"}],
        "paging": {
            "next": (
                f"https://graph.facebook.com/v26.0/1/posts?access_token={TOKEN}&limit=2"
                + ("&after=QUZURVIy" if repeats == "itself" else "")
            )
        },
    }
    respond(server, "/v26.0/1/posts", loop, query_string={"limit": "2", "after": "QUZURVIy"})
    g = graph(server, sleeps)
    with pytest.raises(PayloadError, match=r"posts: pagination loop, page 3 repeats a page"):
        list(g.pages("1/posts", {"limit": 2}, 10, "posts"))
    assert len(server.log) == 2


# -- errors by their code ------------------------------------------------------------------

EXPIRED = (
    "Error validating access token: Session has expired on Tuesday, 01-Dec-26 10:00:00 PST. "
    "The current time is Wednesday, 02-Dec-26 01:00:00 PST."
)
CASES = {
    "190/463 expired": (400, error_body(EXPIRED, 190, 463), TokenInvalid, 190, 463),
    "190/460 password changed": (
        400,
        error_body(
            "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.",
            190,
            460,
        ),
        TokenInvalid,
        190,
        460,
    ),
    "190/467 invalid": (
        400,
        error_body(
            "Error validating access token: The user has not authorized application 123.", 190, 467
        ),
        TokenInvalid,
        190,
        467,
    ),
    "HTTP 401 without a body": (401, None, TokenInvalid, None, None),
    "HTTP 401 with an error of no code": (
        401,
        {"error": {"message": "Authentication required", "type": "OAuthException"}},
        TokenInvalid,
        None,
        None,
    ),
    "10 permission": (
        400,
        error_body(
            "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' feature.",
            10,
        ),
        NoAccess,
        10,
        None,
    ),
    "200 permission": (
        403,
        error_body("(#200) Requires pages_read_user_content permission", 200),
        NoAccess,
        200,
        None,
    ),
    "100/33 missing": (
        400,
        error_body(
            "Unsupported get request. Object with ID '1' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
            100,
            33,
            "GraphMethodException",
        ),
        NoAccess,
        100,
        33,
    ),
    "4 app": (
        400,
        error_body("(#4) Application request limit reached", 4),
        GraphRateLimited,
        4,
        None,
    ),
    "17 user": (
        400,
        error_body("(#17) User request limit reached", 17),
        GraphRateLimited,
        17,
        None,
    ),
    "32 page": (
        400,
        error_body("(#32) Page request limit reached", 32),
        GraphRateLimited,
        32,
        None,
    ),
    "613 custom": (
        400,
        error_body("(#613) Calls to this api have exceeded the rate limit.", 613),
        GraphRateLimited,
        613,
        None,
    ),
    "80001 pages": (
        400,
        error_body("(#80001) There have been too many calls to this Page account.", 80001),
        GraphRateLimited,
        80001,
        None,
    ),
    "80002 instagram": (
        400,
        error_body("(#80002) There have been too many calls to this Instagram account.", 80002),
        GraphRateLimited,
        80002,
        None,
    ),
    "100 invalid metric": (
        400,
        error_body("(#100) The value must be a valid insights metric", 100),
        InvalidMetric,
        100,
        None,
    ),
    "100 generic": (
        400,
        error_body("(#100) Tried accessing nonexisting field (fan_kount) on node type (Page)", 100),
        GraphError,
        100,
        None,
    ),
    # 2500 is not the token's fault (a wrong path, /me with an app token)
    "2500 path": (400, error_body("Unknown path components: /postz", 2500), GraphError, 2500, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_errors_are_classified_by_their_code(server, sleeps, case):
    status, body, cls, code, subcode = CASES[case]
    if body is None:
        server.expect_request("/v26.0/x").respond_with_data("", status=status)
    else:
        respond(server, "/v26.0/x", body, status=status)
    g = graph(server, sleeps)
    g.rate_limit_retries = 0  # the classification only (retries: below)
    with pytest.raises(GraphError) as info:
        g.get("x")
    exc = info.value
    assert type(exc) is cls
    assert (exc.code, exc.subcode, exc.status) == (code, subcode, status)
    assert len(server.log) == 1 and sleeps == []
    if body is not None:
        assert body["error"]["message"] in exc.detail
        assert ("fbtrace_id AbCdEf123" in exc.detail) == ("fbtrace_id" in body["error"])
    if cls is TokenInvalid:
        # names the connection and says what to do
        assert exc.detail.startswith(
            "the access token in connection facebook_default is not valid ("
        )
        assert "create a new long-lived token and put it in the connection's password" in exc.detail
    if case == "190/463 expired":
        assert f"code 190/463: {EXPIRED} (fbtrace_id AbCdEf123)" in exc.detail


# -- rate limits: retried, then given up -----------------------------------------------------


def test_a_rate_limit_waits_the_time_meta_names_then_goes_on(server, sleeps):
    # estimated_time_to_regain_access is in minutes: 1 -> 60 s
    respond(
        server,
        "/v26.0/x",
        error_body("(#80001) There have been too many calls to this Page account.", 80001),
        status=400,
        once=True,
        headers={
            "X-Business-Use-Case-Usage": buc(
                call_count=100, total_cputime=9, total_time=9, estimated_time_to_regain_access=1
            )
        },
    )
    respond(server, "/v26.0/x", {"id": "x"})
    g = graph(server, sleeps)
    assert g.get("x") == {"id": "x"}
    assert sleeps == [60.0] and len(server.log) == 2


def test_a_rate_limit_without_a_time_backs_off(server, sleeps):
    # no time to regain access: 30 s, then 60 s (rate_limit_backoff doubling)
    for _ in range(2):
        respond(
            server,
            "/v26.0/x",
            error_body("(#4) Application request limit reached", 4),
            status=400,
            once=True,
        )
    respond(server, "/v26.0/x", {"id": "x"})
    g = graph(server, sleeps)
    assert g.get("x") == {"id": "x"}
    assert sleeps == [30.0, 60.0] and len(server.log) == 3


def test_a_rate_limit_that_persists_is_given_up(server, sleeps):
    respond(server, "/v26.0/x", error_body("(#32) Page request limit reached", 32), status=400)
    g = graph(server, sleeps)
    with pytest.raises(GraphRateLimited) as info:
        g.get("x")
    # 3 retries: 30 + 60 + 120 = 210 s waited (120 s is the client's max_wait: allowed)
    assert sleeps == [30.0, 60.0, 120.0] and len(server.log) == 4
    assert info.value.code == 32
    assert info.value.detail == (
        "rate limit, code 32: (#32) Page request limit reached (fbtrace_id AbCdEf123); "
        "still limited after 3 retries (210 s waited): the next run goes on"
    )


def test_a_wait_beyond_max_wait_is_not_waited(server, sleeps):
    # 5 minutes = 300 s > max_wait 120 s: given up at once
    respond(
        server,
        "/v26.0/x",
        error_body("(#80001) There have been too many calls to this Page account.", 80001),
        status=400,
        headers={
            "X-Business-Use-Case-Usage": buc(call_count=100, estimated_time_to_regain_access=5)
        },
    )
    g = graph(server, sleeps)
    with pytest.raises(
        GraphRateLimited, match=r"Meta asks to wait 300 s \(> 120 s\): the next run goes on"
    ):
        g.get("x")
    assert sleeps == [] and len(server.log) == 1


# -- throttling before the limit --------------------------------------------------------------


def test_usage_headers_space_the_requests_out(server, sleeps):
    # the wait before the next request: (usage - 75) / 25 * 60 s, usage the highest
    # percentage of any budget in the last response
    respond(
        server,
        "/v26.0/a",
        {"id": "a"},
        headers={"X-App-Usage": usage(call_count=80, total_cputime=12, total_time=15)},
    )
    respond(
        server,
        "/v26.0/b",
        {"id": "b"},
        headers={"X-App-Usage": usage(call_count=20, total_cputime=30, total_time=95)},
    )
    respond(
        server,
        "/v26.0/c",
        {"id": "c"},
        headers={
            "X-Business-Use-Case-Usage": buc(
                call_count=90, total_cputime=10, total_time=10, estimated_time_to_regain_access=0
            )
        },
    )
    respond(server, "/v26.0/d", {"id": "d"}, headers={"X-App-Usage": usage(call_count=100)})
    respond(
        server,
        "/v26.0/e",
        {"id": "e"},
        headers={"X-Page-Usage": usage(call_count=85, total_time=70)},
    )
    respond(server, "/v26.0/f", {"id": "f"})
    g = graph(server, sleeps)
    for path in "abcdef":
        g.get(path)
    assert sleeps == [
        # after a: 80 % -> (80 - 75) / 25 * 60 = 12 s
        12.0,
        # after b: total_time 95 % -> (95 - 75) / 25 * 60 = 48 s
        48.0,
        # after c: the BUC call_count 90 % -> (90 - 75) / 25 * 60 = 36 s
        36.0,
        # after d: 100 % -> the full pace, 60 s
        60.0,
        # after e: X-Page-Usage call_count 85 % -> (85 - 75) / 25 * 60 = 24 s
        24.0,
    ]
    # below 75 %: no wait
    respond(server, "/v26.0/g", {"id": "g"}, headers={"X-App-Usage": usage(call_count=74)})
    g.get("g")
    g.get("f")
    assert len(sleeps) == 5


def test_a_regain_time_in_a_good_answer_is_waited_or_given_up(server, sleeps):
    respond(
        server,
        "/v26.0/a",
        {"id": "a"},
        headers={
            "X-Business-Use-Case-Usage": buc(call_count=99, estimated_time_to_regain_access=1)
        },
    )
    respond(
        server,
        "/v26.0/b",
        {"id": "b"},
        headers={
            "X-Business-Use-Case-Usage": buc(call_count=100, estimated_time_to_regain_access=4)
        },
    )
    g = graph(server, sleeps)
    g.get("a")
    g.get("b")  # waited 1 minute first
    assert sleeps == [60.0]
    with pytest.raises(GraphRateLimited, match=r"Meta asks to wait 240 s \(> 120 s\)"):
        g.get("a")  # 4 minutes: not even asked
    assert len(server.log) == 2


# -- metrics Meta no longer accepts -----------------------------------------------------------


def _insights(server: HTTPServer, valid: set[str], message: str) -> None:
    """/v26.0/p/insights: 200 with every metric asked for when all are valid, else the error."""

    def handler(request):
        from werkzeug import Response

        metrics = request.args["metric"].split(",")
        if set(metrics) <= valid:
            data = [
                {"name": m, "period": "lifetime", "values": [{"value": 10 + i}]}
                for i, m in enumerate(metrics)
            ]
            return Response(json.dumps({"data": data}), content_type=JSON)
        text = message.format(index=next(i for i, m in enumerate(metrics) if m not in valid))
        return Response(json.dumps(error_body(text, 100)), status=400, content_type=JSON)

    server.expect_request("/v26.0/p/insights").respond_with_handler(handler)


def _asked(server: HTTPServer) -> list[str]:
    return [request.args["metric"] for request, _ in server.log]


def _fetch(g: Graph, metrics: list[str], **kw: Any):
    return g.get_with_metrics(
        metrics, lambda ms: g.get("p/insights", {"metric": ",".join(ms)}), **kw
    )


def test_a_metric_named_in_the_message_is_dropped(server, sleeps):
    _insights(
        server,
        {"post_media_view", "post_clicks"},
        "(#100) post_impressions is not a valid insights metric",
    )
    g = graph(server, sleeps)
    answer, warnings = _fetch(g, ["post_media_view", "post_impressions", "post_clicks"])
    assert [d["name"] for d in answer["data"]] == ["post_media_view", "post_clicks"]
    assert _asked(server) == [
        "post_media_view,post_impressions,post_clicks",
        "post_media_view,post_clicks",
    ]
    assert g.dropped_metrics == {"post_impressions"}
    assert warnings == [
        "insights metric post_impressions dropped: the Graph API v26.0 no longer accepts it "
        "(code 100: (#100) post_impressions is not a valid insights metric (fbtrace_id "
        "AbCdEf123)); the other metrics still load; remove it from facebook_default's extra "
        "insights_metrics"
    ]


def test_a_metric_named_by_its_index_is_dropped(server, sleeps):
    # the message lists the valid values (post_media_view among them): the index decides
    _insights(
        server,
        {"post_media_view"},
        "(#100) metric[{index}] must be one of the following values: post_media_view, post_reactions_by_type_total",
    )
    g = graph(server, sleeps)
    answer, warnings = _fetch(g, ["post_media_view", "post_impressions"], option="views_metrics")
    assert [d["name"] for d in answer["data"]] == ["post_media_view"]
    assert _asked(server) == ["post_media_view,post_impressions", "post_media_view"]
    assert len(warnings) == 1 and warnings[0].startswith("insights metric post_impressions dropped")
    assert warnings[0].endswith("remove it from facebook_default's extra views_metrics")


@pytest.mark.parametrize(
    "message",
    [
        "(#100) The value must be a valid insights metric",
        # names two metrics: the dead one and its replacement
        "(#100) Starting from v26.0, the post_impressions metric is no longer supported; use post_media_view",
    ],
)
def test_a_metric_the_message_does_not_single_out_is_found_by_probing(server, sleeps, message):
    _insights(server, {"post_media_view"}, message)
    g = graph(server, sleeps)
    answer, warnings = _fetch(g, ["post_impressions", "post_media_view"])
    assert answer == {
        "data": [{"name": "post_media_view", "period": "lifetime", "values": [{"value": 10}]}]
    }
    # both, then each alone (the probes), then the valid one
    assert _asked(server) == [
        "post_impressions,post_media_view",
        "post_impressions",
        "post_media_view",
        "post_media_view",
    ]
    assert len(warnings) == 1 and "metric post_impressions dropped" in warnings[0]
    # dropped for the rest of the fetch: not asked for again, not warned again
    answer, warnings = _fetch(g, ["post_impressions", "post_media_view"])
    assert warnings == [] and _asked(server)[-1] == "post_media_view" and len(server.log) == 5


def test_no_valid_metric_left(server, sleeps):
    _insights(server, set(), "(#100) The value must be a valid insights metric")
    g = graph(server, sleeps)
    answer, warnings = _fetch(g, ["post_impressions", "post_engaged_users"])
    assert answer is None and len(warnings) == 2
    assert g.dropped_metrics == {"post_impressions", "post_engaged_users"}


def test_an_invalid_metric_error_nobody_can_pin_down_is_raised(server, sleeps):
    # every metric alone is fine, together they fail: nothing to drop, the error stands
    respond(
        server,
        "/v26.0/p/insights",
        error_body("(#100) The value must be a valid insights metric", 100),
        status=400,
        query_string={"metric": "post_clicks,post_media_view"},
    )
    respond(server, "/v26.0/p/insights", {"data": []})
    g = graph(server, sleeps)
    with pytest.raises(InvalidMetric):
        _fetch(g, ["post_clicks", "post_media_view"])
    assert g.dropped_metrics == set()


# -- payloads --------------------------------------------------------------------------------


def test_json_labelled_text_javascript_is_read_and_html_is_refused(server, sleeps):
    server.expect_request("/v26.0/old").respond_with_data(
        '{"id": "1"}', content_type="text/javascript; charset=UTF-8"
    )
    server.expect_request("/v26.0/html").respond_with_data(
        "<html>Sorry</html>", content_type="text/html"
    )
    g = graph(server, sleeps)
    assert g.get("old") == {"id": "1"}
    with pytest.raises(PayloadError, match=r"expected JSON, got text/html"):
        g.get("html")
