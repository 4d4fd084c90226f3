"""The shared API client, through real HTTP against a local server: retries, backoff, failures, paging."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time

import pytest
from werkzeug import Response

from etl.errors import ConfigError, SourceRefused, SourceUnavailable
from etl.sources.http import ApiClient, RetryPolicy, parse_retry_after

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, jitter=0.001, read_timeout=5, connect_timeout=2)


def client(httpserver, policy=FAST, **kwargs) -> ApiClient:
    return ApiClient(httpserver.url_for("/api"), name="Test API", policy=policy, **kwargs)


def test_429_with_retry_after_is_honoured_then_succeeds(httpserver):
    httpserver.expect_oneshot_request("/api/thing").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_request("/api/thing").respond_with_json({"ok": 1})
    started = time.monotonic()
    with client(httpserver) as api:
        answer = api.get_json("/thing")
    elapsed = time.monotonic() - started
    assert answer.data == {"ok": 1}
    assert len(httpserver.log) == 2
    # The exponential backoff alone would be milliseconds; the server asked for a second.
    assert elapsed >= 0.95


def test_retry_after_is_capped_by_policy(httpserver):
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.01, jitter=0, max_retry_after=0.05)
    httpserver.expect_oneshot_request("/api/thing").respond_with_data("", status=503, headers={"Retry-After": "3600"})
    httpserver.expect_request("/api/thing").respond_with_json([1, 2])
    started = time.monotonic()
    with client(httpserver, policy) as api:
        assert api.get_json("/thing").data == [1, 2]
    assert time.monotonic() - started < 2


def test_scb_style_403_rate_limit_is_retried_only_when_declared(httpserver):
    httpserver.expect_oneshot_request("/api/data").respond_with_data("rate limit", status=403)
    httpserver.expect_request("/api/data").respond_with_json({"ok": True})
    with client(httpserver, extra_retry_statuses={403}) as api:
        assert api.post_json("/data", {"q": 1}).data == {"ok": True}
    assert len(httpserver.log) == 2

    httpserver.clear()
    httpserver.expect_request("/api/data").respond_with_data("forbidden", status=403)
    with client(httpserver) as api, pytest.raises(SourceUnavailable) as err:
        api.get_json("/data")
    assert len(httpserver.log) == 1
    assert "HTTP 403" in str(err.value) and "not retried" in str(err.value)
    # The same answer would come again: a task fails at once (orchestration.fail_fast), no Airflow retries.
    assert isinstance(err.value, SourceRefused)


def test_repeated_500s_fail_with_one_clear_line(httpserver):
    httpserver.expect_request("/api/broken").respond_with_data("boom", status=500)
    with client(httpserver) as api, pytest.raises(SourceUnavailable) as err:
        api.get_json("/broken", {"a": "1"})
    message = str(err.value)
    assert len(httpserver.log) == 3  # attempts=3, no more
    assert "\n" not in message
    assert message.startswith("Test API: GET http://")
    assert "/api/broken?a=1" in message
    assert "failed after 3 attempt(s): HTTP 500" in message


def test_truncated_json_is_retried_and_then_fails_clearly(httpserver):
    httpserver.expect_request("/api/page").respond_with_data(
        '{"values": [{"kpi": "N1"', content_type="application/json"
    )
    with client(httpserver) as api, pytest.raises(SourceUnavailable) as err:
        api.get_json("/page")
    assert len(httpserver.log) == 3
    assert "not valid JSON (truncated?)" in str(err.value)
    assert "after 3 attempt(s)" in str(err.value)


def test_truncated_json_once_then_whole_answer_succeeds(httpserver):
    httpserver.expect_oneshot_request("/api/page").respond_with_data('{"values": [', content_type="application/json")
    httpserver.expect_request("/api/page").respond_with_json({"values": []})
    with client(httpserver) as api:
        assert api.get_json("/page").data == {"values": []}


def test_body_cut_short_of_content_length_is_a_retried_transport_error(httpserver):
    def cut(_request):
        # Announces 100 bytes, sends 10: the connection ends mid-body.
        return Response(b'{"values":', status=200, headers={"Content-Length": "100"}, content_type="application/json")

    httpserver.expect_request("/api/cut").respond_with_handler(cut)
    with client(httpserver, RetryPolicy(attempts=2, initial_wait=0.001, jitter=0, read_timeout=2)) as api:
        with pytest.raises(SourceUnavailable) as err:
            api.get_json("/cut")
    assert "after 2 attempt(s)" in str(err.value)


def test_404_is_not_retried_and_quotes_the_answer(httpserver):
    httpserver.expect_request("/api/missing").respond_with_data('{"title": "No such table"}', status=404)
    with client(httpserver) as api, pytest.raises(SourceUnavailable) as err:
        api.get_json("/missing")
    assert len(httpserver.log) == 1
    assert "HTTP 404" in str(err.value) and "No such table" in str(err.value)


def test_connection_refused_is_retried_then_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = ApiClient(f"http://127.0.0.1:{port}/v3", name="Kolada", policy=FAST)
    with api, pytest.raises(SourceUnavailable) as err:
        api.get_json("/data")
    assert "Kolada: GET" in str(err.value) and "after 3 attempt(s): ConnectError" in str(err.value)


def test_read_timeout_is_retried(httpserver):
    def slow(_request):
        time.sleep(0.6)
        return Response(json.dumps({"late": True}), content_type="application/json")

    httpserver.expect_request("/api/slow").respond_with_handler(slow)
    policy = RetryPolicy(attempts=2, initial_wait=0.001, jitter=0, read_timeout=0.2, connect_timeout=1)
    with client(httpserver, policy) as api, pytest.raises(SourceUnavailable) as err:
        api.get_json("/slow")
    assert "ReadTimeout" in str(err.value)
    # Let the server finish its sleeping handlers so they do not land in the next test's log.
    deadline = time.monotonic() + 5
    while len(httpserver.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_pages_follow_next_links_and_pin_them_to_the_configured_host(httpserver):
    def page(request):
        n = int(request.args.get("page", "1"))
        body: dict[str, object] = {"values": [n]}
        if n < 3:
            # As a live API does: an absolute link naming its public host.
            body["next_url"] = f"https://api.example.org/api/items?page={n + 1}"
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/api/items").respond_with_handler(page)
    with client(httpserver) as api:
        pages = list(api.pages("/items", next_link=lambda d: d.get("next_url")))
    assert [p.data["values"] for p in pages] == [[1], [2], [3]]
    assert [r.args.get("page") for r, _ in httpserver.log] == [None, "2", "3"]


def test_endless_pagination_is_stopped(httpserver):
    def forever(request):
        n = int(request.args.get("page", "1"))
        return Response(
            json.dumps({"values": [], "next_url": f"/api/items?page={n + 1}"}), content_type="application/json"
        )

    httpserver.expect_request("/api/items").respond_with_handler(forever)
    policy = RetryPolicy(attempts=1, max_pages=5)
    with client(httpserver, policy) as api, pytest.raises(SourceUnavailable) as err:
        list(api.pages("/items", next_link=lambda d: d.get("next_url")))
    assert len(httpserver.log) == 5
    assert "past 5 pages" in str(err.value)


def test_a_next_link_back_to_a_seen_page_is_a_loop(httpserver):
    httpserver.expect_request("/api/items").respond_with_json({"values": [], "next_url": "/api/items"})
    with client(httpserver) as api, pytest.raises(SourceUnavailable) as err:
        list(api.pages("/items", next_link=lambda d: d.get("next_url")))
    assert "loops back" in str(err.value)
    assert len(httpserver.log) == 1


def test_min_interval_paces_requests(httpserver):
    httpserver.expect_request("/api/x").respond_with_json({})
    policy = RetryPolicy(attempts=1, min_interval=0.2)
    started = time.monotonic()
    with client(httpserver, policy) as api:
        for _ in range(3):
            api.get_json("/x")
    assert time.monotonic() - started >= 0.38


def test_parse_retry_after_accepts_seconds_and_http_dates():
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_unusable_policy_or_url_is_a_config_error():
    with pytest.raises(ConfigError):
        RetryPolicy(attempts=0)
    with pytest.raises(ConfigError):
        RetryPolicy(read_timeout=0)
    with pytest.raises(ConfigError):
        ApiClient("api.kolada.se/v3", name="Kolada")
