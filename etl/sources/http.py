"""The one HTTP client the public-API sources (SCB, Kolada) use.

It owns everything about talking to a flaky public API and nothing about
what the answers mean: timeouts, a client-side request pace, bounded
retries with exponential backoff and jitter, honouring ``Retry-After``,
following pagination links with a guard against endless paging, and
turning "the source did not deliver" into one readable
:class:`~etl.errors.SourceUnavailable` line (what was asked, what came
back, how many attempts).

Retried: transport errors and timeouts, 5xx, 429 (and whatever extra
statuses a source uses for rate limiting — SCB's PxWeb answers 403), and
a body that is not valid JSON (a truncated answer is almost always a cut
connection, not a permanent fault). Not retried: other 4xx — asking again
will not fix a wrong URL or query.

:class:`ApiRows` is what a source module hands to a pipeline: parsed rows
with their origin, rejected rows with a reason, and the requests made.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import tenacity

from etl.errors import ConfigError, SourceRefused, SourceUnavailable
from etl.privacy import redact_uri

log = logging.getLogger(__name__)

USER_AGENT = "etl-regional-followup/1.0 (+reference pipeline)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses whose Retry-After header is the server telling us how long to back off.
RETRY_AFTER_STATUSES = frozenset({403, 429, 503})

# Error bodies and transport errors quoted in a message: enough to recognise the server's complaint,
# never a whole HTML error page (or whatever secrets it echoes) in a log line or the load log.
SNIPPET_CHARS = 200
URL_CHARS = 500  # a request URL in a message: long enough for Kolada's 25-id lists, bounded for server-made links


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, credentials redacted, cut to ``limit`` characters (with "…" when cut).

    Redacted before cutting, so a secret cut in half by the limit cannot
    slip past the redaction.
    """
    one_line = redact_uri(" ".join(str(text).split()))
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit the live APIs; tests pass tiny waits."""

    attempts: int = 5
    initial_wait: float = 1.0  # first exponential backoff, seconds
    max_wait: float = 60.0  # cap of one exponential backoff
    jitter: float = 1.0  # up to this many random seconds added, so parallel clients spread out
    max_retry_after: float = 300.0  # never wait longer than this, whatever Retry-After says
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    min_interval: float = 0.0  # seconds between requests: a client-side pace under the server's rate limit
    max_pages: int = 1000  # a next-link chain longer than this is a server bug, not data

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError("HTTP retry policy: attempts must be at least 1")
        if self.max_pages < 1:
            raise ConfigError("HTTP retry policy: max_pages must be at least 1")
        for name in ("initial_wait", "max_wait", "jitter", "max_retry_after", "min_interval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"HTTP retry policy: {name} must not be negative")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("HTTP retry policy: timeouts must be positive")


@dataclass
class JsonResponse:
    url: str  # the URL actually requested (with its query string)
    data: Any
    sha256: str  # of the body as received: lineage for the load log
    status: int


@dataclass
class ApiRows:
    """Rows an API source produced for one table, with their accounting.

    ``rows`` carry the table's columns plus the origin columns
    ``source_file`` (the request), ``row_number`` (position in that answer)
    and ``raw`` (the record as received); ``rejected`` are quarantine dicts
    with a ``reason``. ``rows_in`` = len(rows) + len(rejected).

    ``withdrawn`` counts records the source itself marks as withdrawn
    (Kolada's ``isdeleted``): dropped, not input, so not in ``rows_in``.
    """

    rows: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (request or file URI, sha256 of the answer)
    warnings: list[str] = field(default_factory=list)
    withdrawn: int = 0

    @property
    def rows_in(self) -> int:
        return len(self.rows) + len(self.rejected)

    def extend(self, other: ApiRows) -> None:
        self.rows.extend(other.rows)
        self.rejected.extend(other.rejected)
        self.sources.extend(other.sources)
        self.warnings.extend(other.warnings)
        self.withdrawn += other.withdrawn


def compact_json(value: Any, limit: int = 2000) -> str:
    """A record as received, for the ``raw`` column (bounded, stable key order)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)[:limit]


class _Retryable(Exception):
    """One failed attempt that is worth repeating."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    """Wait what the server asked for (capped), else exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.backoff = tenacity.wait_exponential_jitter(
            initial=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.max_retry_after)
        return self.backoff(retry_state)


class ApiClient:
    """JSON over HTTP for one API (``name`` appears in every message and log line)."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        policy: RetryPolicy | None = None,
        extra_retry_statuses: frozenset[int] | set[int] = frozenset(),
        headers: dict[str, str] | None = None,
        public_base: str | None = None,
    ):
        if not base_url or "://" not in base_url:
            raise ConfigError(f"{name}: base URL {redact_uri(str(base_url))!r} is not an http(s) URL")
        try:
            parsed = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(
                f"{name}: base URL {redact_uri(base_url)!r} is not a valid URL ({snippet(str(exc))})"
            ) from None
        auth = None
        if parsed.userinfo:
            # Credentials in the URL travel as Basic auth and leave the URL: httpx logs every
            # request URL (INFO "HTTP Request: …", which Airflow task logs show) and the URL of
            # an answer is lineage in the tables and the load log.
            auth = httpx.BasicAuth(parsed.username, parsed.password)
            base_url = str(parsed.copy_with(username=None, password=None))
        self.base_url = base_url.rstrip("/")
        # The API's own root (``https://api.kolada.se/v3``): absolute links it writes start with its
        # path, which stands for whatever base is configured (a mirror's ``/mirror/kolada/v3``).
        self.public_root = [s for s in urlsplit(public_base).path.split("/") if s] if public_base else None
        self.name = name
        self.policy = policy or RetryPolicy()
        self.retry_statuses = RETRY_STATUSES | frozenset(extra_retry_statuses)
        self._last_request: float | None = None
        self._http = httpx.Client(
            auth=auth,
            timeout=httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            follow_redirects=True,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ URLs

    def url(self, path_or_url: str) -> str:
        """An absolute URL: ``path_or_url`` as is if absolute, else under the base URL."""
        if "://" in path_or_url:
            return path_or_url
        return self.base_url + "/" + path_or_url.lstrip("/")

    def _pin_to_base(self, link: str, current: str) -> str:
        """A link the server gave (a next page) as a URL under the configured base.

        APIs give absolute links naming their public host and root
        (Kolada: ``https://api.kolada.se/v3/data/…?page=2``). Behind a
        proxy or mirror the configured base differs in host *and* may add a
        path prefix (``http://mirror/kolada/v3``). The link is resolved
        against ``current``, then:

        * a link already under the configured base is kept as it is;
        * a link under the API's public root (``public_base``, e.g. ``/v3``)
          has that root replaced by the configured base path;
        * any other link's path is taken relative to the longest trailing
          run of the base path's segments that it starts with (``/v3`` for
          ``…/mirror/kolada/v3``; none for a mirror of the host root) and put
          under the base path.

        The result is always on the configured scheme and host, and only
        path and query are taken from the link, so an answer can never send
        the client (and its credentials) to another server.
        """
        absolute = urljoin(current, link)
        parts, base = urlsplit(absolute), urlsplit(self.base_url)
        base_segments = [s for s in base.path.split("/") if s]
        link_segments = [s for s in parts.path.split("/") if s]
        same_origin = (parts.scheme, parts.netloc) == (base.scheme, base.netloc)
        if same_origin and link_segments[: len(base_segments)] == base_segments:
            return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
        roots = [base_segments[start:] for start in range(len(base_segments) + 1)]
        if self.public_root is not None:
            roots.insert(0, self.public_root)
        api_root = next(root for root in roots if link_segments[: len(root)] == root)  # [] always matches
        rest = link_segments[len(api_root) :]
        path = "/" + "/".join(base_segments + rest)
        if parts.path.endswith("/") and rest:
            path += "/"
        log.debug("%s: link %s rebased onto %s", self.name, snippet(absolute), redact_uri(self.base_url))
        return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))

    # ------------------------------------------------------------------ requests

    def get_json(self, path_or_url: str, params: dict | None = None) -> JsonResponse:
        return self.request_json("GET", path_or_url, params=params)

    def post_json(self, path_or_url: str, body: Any, params: dict | None = None) -> JsonResponse:
        return self.request_json("POST", path_or_url, params=params, body=body)

    def request_json(
        self, method: str, path_or_url: str, *, params: dict | None = None, body: Any = None
    ) -> JsonResponse:
        """One JSON answer, retried per the policy; :class:`SourceUnavailable` when it never comes."""
        url = self.url(path_or_url)
        if params:
            url = str(httpx.URL(url).copy_merge_params(params))
        # What messages and logs may say: redacted, and bounded, as a next link comes from the server.
        shown = snippet(url, URL_CHARS)
        attempts = 0

        def attempt() -> JsonResponse:
            nonlocal attempts
            attempts += 1
            return self._attempt(method, url, shown, body)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: %s %s: %s; retry %d/%d in %.1f s",
                self.name,
                method,
                shown,
                getattr(exc, "reason", exc),
                state.attempt_number + 1,
                self.policy.attempts,
                wait,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            wait=_WaitRetryAfterOrBackoff(self.policy),
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise SourceUnavailable(
                f"{self.name}: {method} {shown} failed after {attempts} attempt(s): {exc.reason}"
            ) from None

    def _pace(self) -> None:
        if self.policy.min_interval and self._last_request is not None:
            wait = self._last_request + self.policy.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_request = time.monotonic()

    def _attempt(self, method: str, url: str, shown: str, body: Any) -> JsonResponse:
        self._pace()
        try:
            response = self._http.request(method, url, json=body)
            content = response.content  # read fully here: a cut body surfaces as a transport error
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {snippet(str(exc)) or 'no detail'}") from None
        status = response.status_code
        if status in self.retry_statuses:
            retry_after = None
            if status in RETRY_AFTER_STATUSES:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _Retryable(f"HTTP {status} {snippet(response.reason_phrase, 60)}".strip(), status, retry_after)
        if status >= 400:
            body = snippet(response.text)
            raise SourceRefused(
                f"{self.name}: {method} {shown} answered HTTP {status} {snippet(response.reason_phrase, 60)} (not retried)"
                + (f": {body}" if body else "")
            )
        if not content.strip():
            raise _Retryable(f"HTTP {status} with an empty body where JSON was expected", status)
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            # A truncated body usually means a connection cut mid-answer: worth another try.
            raise _Retryable(
                f"HTTP {status} body is not valid JSON (truncated?) at byte {getattr(exc, 'pos', '?')} "
                f"of {len(content)}",
                status,
            ) from None
        except RecursionError:
            # Well-formed but nested deeper than the decoder can go (a hostile or broken server):
            # asking again brings the same answer, so it is not retried.
            raise SourceRefused(
                f"{self.name}: {method} {shown} answered JSON nested too deeply to decode (not retried)"
            ) from None
        # The URL is lineage (source_file, load log): it must not carry the credentials.
        return JsonResponse(redact_uri(str(response.url)), data, hashlib.sha256(content).hexdigest(), status)

    # ------------------------------------------------------------------ paging

    def pages(
        self, path_or_url: str, *, params: dict | None = None, next_link: Callable[[Any], str | None]
    ) -> Iterator[JsonResponse]:
        """Every page of a paged GET, following ``next_link(page)`` until it gives nothing.

        Stops with :class:`SourceUnavailable` after ``policy.max_pages`` pages
        or when a link repeats, so a server that always says "next" cannot
        keep a task running forever.
        """
        first = self.url(path_or_url)
        url, page_params = first, params
        seen: set[str] = set()
        for _ in range(self.policy.max_pages):
            page = self.get_json(url, page_params)
            seen.add(page.url)
            yield page
            link = next_link(page.data)
            if not link:
                return
            url, page_params = self._pin_to_base(str(link), page.url), None
            if redact_uri(url) in seen:  # page.url is already redacted
                raise SourceRefused(
                    f"{self.name}: paging from {snippet(first, URL_CHARS)} loops back to "
                    f"{snippet(url, URL_CHARS)}; stopping"
                )
        raise SourceRefused(
            f"{self.name}: paging from {snippet(first, URL_CHARS)} went past {self.policy.max_pages} pages; stopping "
            "(endless pagination?)"
        )
