"""Data quality inside the Airflow UI (issue 15 §3): a FastAPI app on the API server, linked from the navigation.

Pages, rendered on the server from the warehouse (local or ``s3://``) by
:mod:`etl.quality`; no script, no CDN asset, so they work offline and inside
the UI's sandboxed iframe:

========================================  ==========================================================
``/etl-quality/``                         per table: rows, last load, totals, quarantine by reason
``/etl-quality/deliveries``               per delivery (source file): latest outcome, rows, why blocked
``/etl-quality/ehealth``                  per month: e-health exports expected, received, loaded, overdue
``/etl-quality/run/{dag_id}/{run_id}``    what one DAG run loaded (the "Data quality" tab of a run)
``/etl-quality/data-docs/…``              the GX Data Docs under ``<warehouse>/_data_docs/``
``/etl-quality/report``                   ``<warehouse>/exports/followup_report.html``
========================================  ==========================================================

**Authentication and access.** Airflow mounts plugin apps as they are: it
does not authenticate their requests. Every route here therefore depends on
Airflow's own FastAPI security dependencies, as the Databricks provider's
plugin does for its repair app (``providers/databricks/.../plugins/
databricks_workflow.py``: ``resolve_user_from_token`` on the ``_token``
cookie or bearer header, then ``get_auth_manager().is_authorized_dag``):

* ``get_user`` (``airflow.api_fastapi.core_api.security``) on the whole
  app: the JWT from the ``Authorization: Bearer`` header or the UI's
  ``_token`` cookie, validated by the configured auth manager (signature,
  expiry, revocation). None: 401; invalid: 403.
* ``requires_access_dag("GET", DagAccessEntity.RUN, …)`` per route, for
  every DAG whose output the page shows (the e-health page: ``ehealth_adoption``;
  the report: ``followup``; the others: all four pipeline DAGs; a run's page:
  the DAG in its path). Refused: 403.

Both are Airflow's functions, called from thin dependencies that import
them at the first request (:func:`current_user`, :func:`read_runs_of`):
every Airflow process, each task included, loads the plugins folder.

Values are escaped by Jinja's autoescape; text from the data is masked and
cut by :mod:`etl.quality` before it gets here. Data Docs and the report are
served with a Content-Security-Policy that runs no inline script or event
handler and loads nothing from another origin.

The warehouse and landing come from the Airflow Variables
``etl_warehouse_uri`` / ``etl_landing_uri``, else ``ETL_WAREHOUSE_URI`` /
``ETL_LANDING_URI`` (:func:`etl.orchestration.settings_from_airflow`).
"""

from __future__ import annotations

import logging
import mimetypes
import typing

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import DictLoader, Environment, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

URL_PREFIX = "/etl-quality"
PIPELINE_DAGS = ("reference_data", "county_reports", "ehealth_adoption", "followup")

# Our own pages: no script at all, styles inline, images only from here or data: URIs.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
# Data Docs: scripts and styles only as files from here (Data Docs rendered for offline use);
# no inline script or event handler runs (a value like <img onerror=…> that escaped escaping stays inert).
DATA_DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'none'; object-src 'none'; base-uri 'self'; "
    "form-action 'none'; frame-ancestors 'self'"
)
# The report is self-contained: inline styles and data: images, nothing else.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


# --------------------------------------------------------------------------- authentication and access
#
# Airflow's own dependencies (airflow.api_fastapi.core_api.security), imported when the first request
# comes: every Airflow process loads the plugins folder (a task, to integrate macros), and importing the
# API server's security module there would cost each task about a second and a deprecation warning.

_bearer = HTTPBearer(auto_error=False)


async def current_user(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer)):
    """Airflow's ``get_user``: the bearer token, else the UI's ``_token`` cookie (401 if none, 403 if invalid)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, bearer)


def read_runs_of(*dag_ids: str, dag_in_path: bool = False):
    """Airflow's ``requires_access_dag("GET", DagAccessEntity.RUN)`` for each DAG: 403 unless the user may read its runs.

    ``dag_in_path``: also for the DAG named by the route's ``{dag_id}``.
    """

    def check(request: Request, user=Depends(current_user)) -> None:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import requires_access_dag

        if dag_in_path:
            requires_access_dag("GET", DagAccessEntity.RUN)(request, user)
        for dag_id in dag_ids:
            requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id)(request, user)

    return [Depends(check)]


# --------------------------------------------------------------------------- templates

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · Data quality</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 1.5rem 2rem;color:#1b1f24;font-size:14px}
nav{display:flex;gap:1rem;padding:.8rem 0;border-bottom:1px solid #d0d7de;margin-bottom:1rem;flex-wrap:wrap}
nav a{text-decoration:none;color:#0550ae}nav a.here{font-weight:600;color:#1b1f24}
table{border-collapse:collapse;margin:.5rem 0 1.2rem}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.s-blocked,.s-failed,.s-overdue{background:#ffebe9;color:#82071e;font-weight:600}
.s-waiting,.s-expected,.s-warning{background:#fff8c5}.s-loaded,.s-published,.s-passed{background:#dafbe1}
.s-unchanged,.s-open,.s-not-sent,.s-nothing_new{color:#57606a}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:.3rem;margin:.2rem 0;max-width:70rem}
.muted{color:#57606a}.box{border:1px solid #d0d7de;border-radius:6px;padding:.5rem 1rem;margin:.8rem 0}
details{margin:.3rem 0}summary{cursor:pointer}
</style></head><body>
<nav>
{%- for key, label, href in nav %}
<a href="{{ href }}"{% if key == here %} class="here"{% endif %}>{{ label }}</a>
{%- endfor %}
</nav>
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
{% if warehouse %}<p class="muted">Warehouse {{ warehouse }}{% if generated %} · read {{ generated }}{% endif %}</p>{% endif %}
</body></html>
"""

_ERROR = """{% extends "base.html" %}{% block body %}
<p class="box s-failed">{{ message }}</p>
{% endblock %}"""

_OVERVIEW = """{% extends "base.html" %}{% block body %}
{% if blocked %}
<div class="box s-blocked">{{ blocked|length }} deliver{{ 'y is' if blocked|length == 1 else 'ies are' }} blocked or failed
(the previous version, if any, stays published): <a href="{{ links.deliveries_blocked }}">blocked</a>,
<a href="{{ links.deliveries_failed }}">failed</a>.</div>
{% endif %}
<h2>Last run per pipeline</h2>
<table><tr><th>pipeline</th><th>finished</th><th>outcome</th><th>table</th><th>message</th><th>last failure</th></tr>
{% for p in runs %}<tr><td>{{ p.pipeline }}</td><td>{{ p.last.finished_at }}</td>
<td class="s-{{ p.last.outcome }}">{{ p.last.outcome }}</td><td>{{ p.last.table or '—' }}</td>
<td>{{ p.last.message or '' }}</td>
<td>{% if p.last_failure %}{{ p.last_failure.finished_at }}: {{ p.last_failure.message or p.last_failure.outcome }}{% endif %}</td></tr>
{% else %}<tr><td colspan="6">Nothing has been loaded into this warehouse yet.</td></tr>{% endfor %}
</table>
<h2>Tables</h2>
<table><tr><th>table</th><th>pipeline</th><th>rows now</th><th>last load</th><th>outcome</th>
<th>last changed</th><th>loads</th><th>rows in</th><th>loaded</th><th>quarantined (all loads)</th>
<th>in quarantine now</th><th>blocked deliveries</th></tr>
{% for t in tables %}<tr>
<td><a href="#t-{{ t.table }}">{{ t.table }}</a></td><td>{{ t.pipeline or '—' }}</td><td class="n">{{ t.rows|n }}</td>
<td>{{ t.last_load.finished_at if t.last_load else '—' }}</td>
<td class="s-{{ t.last_load.outcome if t.last_load else 'open' }}">{{ t.last_load.outcome if t.last_load else 'never loaded' }}</td>
<td>{{ t.last_change or '—' }}</td><td class="n">{{ t.totals.loads|n }}</td><td class="n">{{ t.totals.rows_in|n }}</td>
<td class="n">{{ t.totals.rows_loaded|n }}</td><td class="n">{{ t.totals.rows_quarantined|n }}</td>
<td class="n{% if t.quarantine.rows %} s-warning{% endif %}">{{ t.quarantine.rows|n }}</td>
<td class="n{% if t.blocked_deliveries %} s-blocked{% endif %}">{{ t.blocked_deliveries|length }}</td></tr>
{% endfor %}</table>
{% for t in tables %}
<section class="box" id="t-{{ t.table }}"><h3>{{ t.table }}</h3><p>{{ t.description }}</p>
{% if t.last_load %}<p>Last load {{ t.last_load.finished_at }} by {{ t.last_load.pipeline }}:
<span class="s-{{ t.last_load.outcome }}">{{ t.last_load.outcome }}</span>, validation
<span class="s-{{ t.last_load.validation }}">{{ t.last_load.validation }}</span>,
{{ t.last_load.rows_in|n }} in = {{ t.last_load.rows_loaded|n }} loaded + {{ t.last_load.rows_quarantined|n }} quarantined
(batch {{ t.last_load.batch_id }}, version {{ t.last_load.table_version or '—' }}).</p>
{% if t.last_load.warnings %}<p class="s-warning">Warnings: {{ t.last_load.warnings }}</p>{% endif %}
{% if t.last_load.message %}<p>{{ t.last_load.message }}</p>{% endif %}{% endif %}
{% if t.blocked_deliveries %}<p class="s-blocked">Blocked deliveries of {{ t.pipeline }}:</p><ul>
{% for b in t.blocked_deliveries %}<li>{{ b.file }} ({{ b.since }}): {{ b.message or b.outcome }}</li>{% endfor %}</ul>{% endif %}
{% if t.quarantine.entries %}
<p>In quarantine now: {{ t.quarantine.rows|n }} input row(s) in {{ t.quarantine.entries|n }} entr{{ 'y' if t.quarantine.entries == 1 else 'ies' }}.</p>
<table><tr><th>reason</th><th>rows</th><th>files</th><th>examples (personal data masked)</th></tr>
{% for r in t.quarantine.reasons %}<tr><td>{{ r.reason }}</td><td class="n">{{ r.rows|n }}</td><td class="n">{{ r.files|n }}</td><td>
{% for e in r.examples %}<div>{{ e.file }}{% if e.whole_file %}, whole file ({{ e.rows_held|n }} rows){% else %}, row {{ e.row_number }}{% endif %}: {{ e.reason }}
{% if e.raw %}<pre>{{ e.raw }}</pre>{% endif %}</div>{% endfor %}</td></tr>{% endfor %}
</table>
{% else %}<p class="muted">Nothing in quarantine.</p>{% endif %}
</section>
{% endfor %}
{% endblock %}"""

_DELIVERIES = """{% extends "base.html" %}{% block body %}
<p>Each source file the load log names, newest first. <b>Rows now</b> and <b>in quarantine</b> are read from the
tables (this file's rows in the current version); the load-log figures of a batch cover all the files it loaded together.</p>
<p>Show: <a href="{{ links.deliveries }}">all</a> ·
<a href="{{ links.deliveries_blocked }}">blocked</a> · <a href="{{ links.deliveries_failed }}">failed</a>
{% for p in pipelines %} · <a href="{{ links.deliveries }}?pipeline={{ p|urlencode }}">{{ p }}</a>{% endfor %}</p>
<table><tr><th>file</th><th>pipeline</th><th>latest outcome</th><th>last seen</th><th>last loaded</th>
<th>rows now</th><th>in quarantine</th><th>latest batch (rows in / loaded / quarantined)</th><th>why</th></tr>
{% for d in deliveries %}<tr>
<td>{{ d.file }}<div class="muted">{{ d.folder or '' }} · sha256 {{ d.sha256[:12] }}…</div></td>
<td>{{ d.pipeline }}</td><td class="s-{{ d.outcome }}">{{ d.outcome }}</td><td>{{ d.last_seen }}</td>
<td>{{ d.last_loaded or 'never' }}{% if d.loaded_sha256 and d.loaded_sha256 != d.sha256 %}<div class="muted">(an earlier version)</div>{% endif %}</td>
<td>{% for t, n in d.rows_now.items() %}<div>{{ t }}: {{ n|n }}</div>{% else %}—{% endfor %}</td>
<td>{% for t, n in d.quarantined_now.items() %}<div class="s-warning">{{ t }}: {{ n|n }}</div>{% else %}—{% endfor %}</td>
<td>{% for t in d.tables %}<div>{{ t.table or '(whole delivery)' }}: <span class="s-{{ t.outcome }}">{{ t.outcome }}</span>
{{ t.rows_in|n }} / {{ t.rows_loaded|n }} / {{ t.rows_quarantined|n }}{% if t.files_in_batch > 1 %}
<span class="muted">(with {{ t.files_in_batch - 1 }} other file{{ 's' if t.files_in_batch > 2 else '' }})</span>{% endif %}</div>{% endfor %}</td>
<td>{{ d.message or '' }}{% if d.decision %}<div><b>Decision:</b> {{ d.decision }}</div>{% endif %}
{% if d.approvable %}<div><a href="{{ links.approve }}">Approve or reject it</a> (trigger <code>approve_blocked_delivery</code> with Blocked file = {{ d.file }})</div>{% endif %}</td></tr>
{% else %}<tr><td colspan="9">No deliveries{% if filtered %} match{% endif %}.</td></tr>{% endfor %}
</table>
{% endblock %}"""

_EHEALTH = """{% extends "base.html" %}{% block body %}
<form method="get" action="{{ links.ehealth }}">
<label>From <input name="from" value="{{ status.first }}" size="8" pattern="[0-9]{4}-[0-9]{2}"></label>
<label>to <input name="to" value="{{ status.last }}" size="8" pattern="[0-9]{4}-[0-9]{2}"></label>
<label>overdue <input name="overdue_after_days" value="{{ status.overdue_after_days }}" size="3" inputmode="numeric"> days after the month</label>
<button type="submit">Show</button></form>
{% if status.landing_error %}<p class="box s-failed">{{ status.landing_error }}</p>{% endif %}
<p>Each month expects one export of each kind ({% for k in kinds %}<b>{{ k }}</b>{{ ', ' if not loop.last else '' }}{% endfor %}, each from the month it is first expected), due {{ status.overdue_after_days }} days after the month ends
(today is {{ status.today }}).
{% for s, n in status.counts|dictsort %}<span class="s-{{ s|replace(' ', '-') }}">{{ s }}: {{ n }}</span>{{ ', ' if not loop.last else '' }}{% endfor %}</p>
<table><tr><th>month</th><th>status</th><th>due</th>{% for k in kinds %}<th>{{ k }}</th>{% endfor %}<th>unit-level file</th></tr>
{% for m in status.months %}<tr><td>{{ m.month }}</td><td class="s-{{ m.status|replace(' ', '-') }}">{{ m.status }}</td><td>{{ m.due }}</td>
{% for d in m.deliveries + [m.units] %}<td class="s-{{ d.status|replace(' ', '-') }}">{{ d.status }}{% if d.days_overdue %} ({{ d.days_overdue }} days){% endif %}
{% for f in d.received %}<div class="muted">{{ f.name }} · {{ f.size|n }} B · {{ f.modified or '' }}</div>{% endfor %}
{% if d.loaded_at %}<div class="muted">loaded {{ d.loaded_at }}</div>{% endif %}
{% if d.message %}<div>{{ d.message }}</div>{% endif %}{% if d.note %}<div class="muted">{{ d.note }}</div>{% endif %}</td>{% endfor %}
</tr>{% endfor %}</table>
{% endblock %}"""

_RUN = """{% extends "base.html" %}{% block body %}
{% if pipeline %}
<p>DAG {{ dag_id }}, run {{ run_id }} ({{ state or 'unknown state' }}), {{ started or 'not started' }} – {{ ended or 'still running' }}:
what pipeline {{ pipeline }} wrote to the load log in that time.</p>
<table><tr><th>finished</th><th>table</th><th>outcome</th><th>validation</th><th>rows in</th><th>loaded</th>
<th>quarantined</th><th>files</th><th>message / warnings</th></tr>
{% for r in rows %}<tr><td>{{ r.finished_at }}</td><td>{{ r.table or '(whole delivery)' }}</td><td class="s-{{ r.outcome }}">{{ r.outcome }}</td>
<td class="s-{{ r.validation }}">{{ r.validation }}</td><td class="n">{{ r.rows_in|n }}</td><td class="n">{{ r.rows_loaded|n }}</td>
<td class="n{% if r.rows_quarantined %} s-warning{% endif %}">{{ r.rows_quarantined|n }}</td>
<td>{{ r.file_names|join(', ') }}{% if r.files > r.file_names|length %} and {{ r.files - r.file_names|length }} more{% endif %}</td>
<td>{{ r.message or '' }}{% if r.warnings %}<div class="s-warning">{{ r.warnings }}</div>{% endif %}</td></tr>
{% else %}<tr><td colspan="9">This run wrote nothing to the load log.</td></tr>{% endfor %}</table>
<p>See also <a href="{{ links.overview }}">tables and quarantine</a>, <a href="{{ links.deliveries }}?pipeline={{ pipeline|urlencode }}">this pipeline's deliveries</a>{% if dag_id == 'ehealth_adoption' %}, <a href="{{ links.ehealth }}">e-health months</a>{% endif %}, <a href="{{ links.data_docs }}">Data Docs</a>.</p>
{% else %}<p>DAG {{ dag_id }} does not load the warehouse: nothing to show for its runs.</p>{% endif %}
{% endblock %}"""

_TEMPLATES = Environment(
    loader=DictLoader(
        {
            "base.html": _BASE,
            "error.html": _ERROR,
            "overview.html": _OVERVIEW,
            "deliveries.html": _DELIVERIES,
            "ehealth.html": _EHEALTH,
            "run.html": _RUN,
        }
    ),
    autoescape=True,
    undefined=StrictUndefined,
)


def _number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u202f")
    return str(value)


_TEMPLATES.filters["n"] = _number


def _links(request: Request) -> dict[str, str]:
    root = request.url_for("overview").path.rstrip("/")
    return {
        "overview": root + "/",
        "deliveries": root + "/deliveries",
        "deliveries_blocked": root + "/deliveries?outcome=blocked",
        "deliveries_failed": root + "/deliveries?outcome=failed",
        "ehealth": root + "/ehealth",
        "data_docs": root + "/data-docs/",
        "report": root + "/report",
        # The Airflow UI's page of the approval DAG (its trigger form asks for the blocked file).
        "approve": "/dags/approve_blocked_delivery",
    }


def _page(
    request: Request, template: str, here: str, title: str, status_code: int = 200, warehouse: str = "", **context
) -> HTMLResponse:
    import datetime as dt

    links = _links(request)
    nav = [
        ("overview", "Tables", links["overview"]),
        ("deliveries", "Deliveries", links["deliveries"]),
        ("ehealth", "E-health months", links["ehealth"]),
        ("data-docs", "Data Docs", links["data_docs"]),
        ("report", "Report", links["report"]),
    ]
    body = _TEMPLATES.get_template(template).render(
        title=title,
        here=here,
        nav=nav,
        links=links,
        warehouse=warehouse,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        **context,
    )
    return HTMLResponse(body, status_code=status_code, headers={**COMMON_HEADERS, "Content-Security-Policy": PAGE_CSP})


def _error(request: Request, status_code: int, message: str, warehouse: str = "") -> HTMLResponse:
    from etl.quality import shown_text

    return _page(
        request,
        "error.html",
        "",
        "Cannot show this page",
        status_code,
        warehouse=warehouse,
        message=shown_text(message),
    )


def _settings():
    """Landing and warehouse: Airflow Variables etl_landing_uri / etl_warehouse_uri, else the environment."""
    from etl.orchestration import settings_from_airflow

    return settings_from_airflow({})


def _guarded(request: Request, here: str, render):
    """``render(settings)``, with a bad setting or an unreadable store shown as one line (no traceback)."""
    from etl.errors import ConfigError, EtlError
    from etl.privacy import redact_uri

    try:
        settings = _settings()
    except ConfigError as exc:
        return _error(request, 500, f"configuration: {exc}")
    warehouse = redact_uri(settings.warehouse_uri)
    try:
        return render(settings, warehouse)
    except ValueError as exc:
        return _error(request, 400, str(exc), warehouse)
    except (EtlError, OSError) as exc:
        log.warning("data quality page %s: %s", here, redact_uri(str(exc)))
        return _error(request, 503, f"cannot read the warehouse: {exc}", warehouse)


# --------------------------------------------------------------------------- the app

# Airflow does not authenticate plugin apps: the app-level dependency makes every route (and any route
# added later) need a valid Airflow token; each route adds the DAG access its data needs (FastAPI runs
# current_user once per request: the checks share it). No OpenAPI or docs routes: they would be served
# without these dependencies.
app = FastAPI(
    title="ETL data quality", dependencies=[Depends(current_user)], docs_url=None, redoc_url=None, openapi_url=None
)


@app.exception_handler(StarletteHTTPException)
async def _not_signed_in(request: Request, exc: StarletteHTTPException):
    """A person following a link (a failure line, a notification, a bookmark) without a valid session goes to
    the login page and back; a signed-in person whose roles do not reach the page gets a page saying so (403);
    API clients, and every other refusal, get the status as it is (401 / 403, no data)."""
    from fastapi.exception_handlers import http_exception_handler

    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    # An expired session is a 401; a session the API server no longer accepts (a token from before its JWT
    # secret changed, e.g. a restarted `make airflow`) is Airflow's 403 "Invalid JWT token": both a sign-in.
    stale = exc.status_code == 401 or (exc.status_code == 403 and exc.detail == "Invalid JWT token")
    if stale and wants_page and "authorization" not in request.headers:
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(
            get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303, headers=COMMON_HEADERS
        )
    if exc.status_code == 403 and wants_page and "authorization" not in request.headers:
        # Signed in, but no role that may read the pipelines' runs (e.g. in no directory group): one readable
        # line instead of Airflow's raw {"detail": "Forbidden"}; nothing of the data.
        return _error(
            request,
            403,
            "your sign-in has no role that may read the pipelines' runs (analyst, engineer, data steward or "
            "admin); ask an administrator for one",
        )
    return await http_exception_handler(request, exc)


@app.get("/", response_class=HTMLResponse, name="overview", dependencies=read_runs_of(*PIPELINE_DAGS))
def overview(request: Request):
    from etl import quality

    def render(settings, warehouse):
        log_rows = quality.load_log_rows(settings.warehouse_uri)
        found = quality.deliveries(settings.warehouse_uri, log_rows=log_rows, with_rows=False)
        return _page(
            request,
            "overview.html",
            "overview",
            "Data quality: tables",
            warehouse=warehouse,
            tables=quality.table_overview(settings.warehouse_uri, log_rows=log_rows, delivery_rows=found),
            runs=quality.pipeline_runs(log_rows),
            blocked=[d for d in found if d["outcome"] in ("blocked", "failed")],
        )

    return _guarded(request, "overview", render)


@app.get("/deliveries", response_class=HTMLResponse, name="deliveries", dependencies=read_runs_of(*PIPELINE_DAGS))
def deliveries(request: Request, outcome: str | None = None, pipeline: str | None = None):
    from etl import quality

    def render(settings, warehouse):
        log_rows = quality.load_log_rows(settings.warehouse_uri)
        found = quality.deliveries(
            settings.warehouse_uri, log_rows=log_rows, outcome=outcome or None, pipeline=pipeline or None
        )
        pipelines = sorted({r["pipeline"] for r in log_rows if any(r.get("source_sha256") or ())})
        return _page(
            request,
            "deliveries.html",
            "deliveries",
            "Data quality: deliveries",
            warehouse=warehouse,
            deliveries=found,
            pipelines=pipelines,
            filtered=bool(outcome or pipeline),
        )

    return _guarded(request, "deliveries", render)


@app.get("/ehealth", response_class=HTMLResponse, name="ehealth", dependencies=read_runs_of("ehealth_adoption"))
def ehealth(request: Request):
    from etl import quality
    from etl.sources import ehealth_spec

    def render(settings, warehouse):
        default_first, default_last = quality.default_months()
        params = request.query_params
        days = (params.get("overdue_after_days") or "").strip() or str(quality.OVERDUE_AFTER_DAYS)
        if not days.isdigit() or int(days) > 366:
            raise ValueError(f"overdue_after_days must be a whole number of days from 0 to 366, not {days!r}")
        status = quality.ehealth_months(
            settings.warehouse_uri,
            settings.landing_uri,
            (params.get("from") or "").strip() or default_first,
            (params.get("to") or "").strip() or default_last,
            overdue_after_days=int(days),
        )
        return _page(
            request,
            "ehealth.html",
            "ehealth",
            "Data quality: e-health deliveries per month",
            warehouse=warehouse,
            status=status,
            kinds=[*ehealth_spec.MONTHLY_KINDS],
        )

    return _guarded(request, "ehealth", render)


@app.get(
    "/run/{dag_id}/{run_id:path}", response_class=HTMLResponse, name="run", dependencies=read_runs_of(dag_in_path=True)
)
def dag_run(request: Request, dag_id: str, run_id: str):
    from etl import quality

    pipeline = quality.DAG_PIPELINES.get(dag_id)

    def render(settings, warehouse):
        context: dict[str, typing.Any] = {
            "dag_id": dag_id,
            "run_id": run_id,
            "pipeline": pipeline,
            "rows": [],
            "state": None,
            "started": None,
            "ended": None,
        }
        if pipeline is not None:
            from airflow.models.dagrun import DagRun
            from airflow.utils.session import create_session
            from sqlalchemy import select

            with create_session() as session:
                run = session.scalars(
                    select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
                ).one_or_none()
                if run is None:
                    return _error(request, 404, f"no run {run_id!r} of DAG {dag_id!r}", warehouse)
                started, ended, state = run.start_date, run.end_date, run.state
            context.update(
                state=str(state) if state else None,
                started=quality.shown_time(started),
                ended=quality.shown_time(ended),
                rows=quality.run_activity(settings.warehouse_uri, pipeline, started, ended),
            )
        return _page(request, "run.html", "", f"Data quality: {dag_id} run", warehouse=warehouse, **context)

    return _guarded(request, "run", render)


def _file_response(request: Request, parts: list[str], csp: str, here: str) -> Response:
    from etl import quality

    def render(settings, warehouse):
        data = quality.warehouse_file(settings.warehouse_uri, parts)
        if data is None:
            what = (
                "The follow-up report has not been written yet (the followup DAG writes it)."
                if tuple(parts) == quality.REPORT
                else f"No {'/'.join(parts[1:])} in the Data Docs."
            )
            return _error(request, 404, what, warehouse)
        media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        if media.startswith("text/") or media in ("application/javascript", "application/json"):
            media += "; charset=utf-8"
        return Response(data, media_type=media, headers={**COMMON_HEADERS, "Content-Security-Policy": csp})

    return _guarded(request, here, render)


@app.get("/data-docs", include_in_schema=False, dependencies=read_runs_of(*PIPELINE_DAGS))
def data_docs_root(request: Request):
    return RedirectResponse(request.url_for("data_docs", path="").path, status_code=307)


@app.get("/data-docs/{path:path}", name="data_docs", dependencies=read_runs_of(*PIPELINE_DAGS))
def data_docs(request: Request, path: str):
    from etl import quality

    try:
        parts = quality.safe_parts(path)
    except ValueError:
        return _error(request, 404, "No such page in the Data Docs.")
    return _file_response(request, [quality.DATA_DOCS, *parts], DATA_DOCS_CSP, "data-docs")


@app.get("/report", name="report", dependencies=read_runs_of("followup"))
def report(request: Request):
    from etl import quality

    return _file_response(request, list(quality.REPORT), REPORT_CSP, "report")


class EtlQualityPlugin(AirflowPlugin):
    """The data-quality pages: mounted on the API server, linked from the navigation and from every DAG run."""

    name = "etl_quality"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ETL data quality"}]
    external_views = [
        {
            "name": "Data quality",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "etl-quality",
            "nav_top_level": True,
        },
        {
            # The UI fills in {DAG_ID} and {RUN_ID} and shows the page as a tab of each DAG run.
            "name": "Data quality",
            "href": f"{URL_PREFIX}/run/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "etl-quality-run",
        },
    ]
