"""The little the DAGs need from the library: settings from Airflow, asset names, run periods, task outcomes.

Airflow is imported inside functions only, so this module (and ``etl``)
import without Airflow installed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from etl.config import ENV_WAREHOUSE, Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Airflow Variables that override the environment in DAG runs.
VAR_LANDING = "etl_landing_uri"
VAR_WAREHOUSE = "etl_warehouse_uri"
VAR_KOLADA_KPIS = "etl_kolada_kpis"
# Pool that serialises runs writing the same warehouse (created by `make demo` / `make airflow`).
WRITER_POOL = "etl_warehouse_writer"
# Connection (type aws) holding the object store's credentials for s3:// landing and warehouse URIs.
OBJECT_STORE_CONN = "etl_object_store"


def default_args() -> dict:
    """Task defaults every DAG shares: owner, retries with exponential backoff, the writer pool."""
    import datetime as dt

    return {
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=30),
        "pool": WRITER_POOL,
        # Bad data (TaskRefused, see run_task) fails at once: the same input would fail every retry.
        "retry_policy": refusal_policy(),
        # After the last retry: the failure and its one-line reason to the notifier (Connection etl_notify).
        "on_failure_callback": notify_failure,
    }


def refusal_policy():
    """The retry policy of every task: a :class:`TaskRefused` fails at once; anything else retries as configured."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=TaskRefused,
                action=RetryAction.FAIL,
                reason="bad data: the same input would fail every retry (the line above says why)",
            )
        ]
    )


def notify_failure(context) -> None:
    """``on_failure_callback`` of every task: see :func:`etl.notify.on_failure`."""
    from etl.notify import on_failure

    on_failure(context)


def asset_uri(table: str, environ: Mapping[str, str] | None = None) -> str:
    """The Airflow Asset URI of a published table: where it is, ``s3://bucket/prefix/<table>`` or
    ``file:///data/warehouse/<table>`` (one per table, shared by producer and consumers).

    Computed when Airflow parses the DAG files, so from the environment only (no metadata database, no
    heavy import): the Variable ``etl_warehouse_uri`` as the environment gives it
    (``AIRFLOW_VAR_ETL_WAREHOUSE_URI``), else ``ETL_WAREHOUSE_URI``, else ``./warehouse`` — the order a task
    resolves the warehouse in, the Variable stored in the metadata database aside (a task whose warehouse
    differs from its Assets' logs a warning: :func:`settings_from_airflow`). No credentials: a URI's
    userinfo is left out (:func:`etl.privacy.userinfo_spans`, the redaction's own reading of it).
    """
    return f"{asset_warehouse(environ)}/{table}"


ENV_WAREHOUSE_VARIABLE = "AIRFLOW_VAR_" + "etl_warehouse_uri".upper()  # the Variable VAR_WAREHOUSE as environment


def asset_warehouse(environ: Mapping[str, str] | None = None) -> str:
    """The warehouse as the Assets name it (see :func:`asset_uri`): a URI without credentials or trailing "/"."""
    from pathlib import Path

    from etl.errors import ConfigError
    from etl.privacy import redact_uri, userinfo_spans

    env = os.environ if environ is None else environ
    raw = (env.get(ENV_WAREHOUSE_VARIABLE) or env.get(ENV_WAREHOUSE) or "warehouse").strip()
    try:
        # The project's own reading of a warehouse location (a local path made absolute, checks included);
        # nothing else of the environment, so another setting's mistake never breaks parsing the DAGs.
        uri = Settings.resolve(warehouse=raw, environ={}).warehouse_uri
    except ConfigError:
        # Unusable: the tasks fail saying so; the Assets still name it, without a query, fragment or secrets.
        uri = raw.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if "://" not in uri:
        return Path(uri).as_uri()  # percent-encoded, ASCII: file:///data/my%20wh
    for start, end in reversed(userinfo_spans(uri)):
        uri = uri[:start] + uri[end + 1 :]  # "user:secret@" out, the "@" with it
    return redact_uri(uri)


def settings_from_airflow(conf: dict | None = None, accepted: frozenset[str] | set[str] = frozenset()) -> Settings:
    """Settings for a task: Airflow Variables and Connections > environment > defaults.

    ``conf`` is the run conf; ``accepted`` the keys the DAG declares as
    Params (its run options). Any other key is refused with one line
    (:class:`ConfigError`): storage locations and API endpoints are admin
    territory (Variables, Connections), never something whoever may trigger
    a run can redirect.
    """
    # Size: one precedence rule per setting (run conf, Variable, environment), spelled out so each can be
    # read.
    from airflow.sdk import Variable

    from etl.errors import ConfigError

    conf = conf or {}
    refused = sorted(set(conf) - set(accepted))
    if refused:
        raise ConfigError(
            f"run conf key(s) not accepted: {', '.join(map(repr, refused))}. Storage locations and API endpoints "
            f"are set by admins (Variables {VAR_LANDING}, {VAR_WAREHOUSE}; Connections scb_default, "
            f"kolada_default, {OBJECT_STORE_CONN}); this DAG's run options are its Params: "
            f"{', '.join(sorted(accepted)) or 'none'}"
        )

    def var(name: str) -> str | None:
        try:
            return Variable.get(name, default=None)
        except Exception:  # no metadata DB reachable (parsing, unit tests): fall back to env
            return None

    def connection_url(conn_id: str) -> str | None:
        try:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(conn_id)
        except Exception:
            return None
        host = (conn.host or "").rstrip("/")
        if not host:
            return None
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        return (
            host
            + (f":{conn.port}" if conn.port else "")
            + ("/" + conn.extra_dejson.get("path", "").strip("/") if conn.extra_dejson.get("path") else "")
        )

    use_object_store_connection()
    settings = Settings.resolve(
        landing=var(VAR_LANDING),
        warehouse=var(VAR_WAREHOUSE),
        scb_base_url=connection_url("scb_default"),
        kolada_base_url=connection_url("kolada_default"),
        kolada_kpis=var(VAR_KOLADA_KPIS),
    )
    named = asset_warehouse()
    if asset_warehouse({ENV_WAREHOUSE: settings.warehouse_uri}) != named:
        # The Variable in the metadata database names another warehouse than the environment the DAG files
        # were parsed with: the Assets (and their events) would name tables this run does not write.
        from etl.privacy import redact_uri

        log.warning(
            "this run's warehouse is %s (Variable %s) but the DAGs' Assets name %s (%s as the DAG processor "
            "reads it): set %s to the same warehouse",
            redact_uri(settings.warehouse_uri),
            VAR_WAREHOUSE,
            named,
            ENV_WAREHOUSE,
            ENV_WAREHOUSE,
        )
    return settings


def fail_fast(call):
    """``call()``, with bad data failing the task at once instead of being retried.

    A delivery refused or blocked, a failed expectation, broken accounting or
    an unusable setting (:class:`BadInput`, :class:`ValidationFailed`,
    :class:`AccountingError`, :class:`ConfigError`), or a source that answered
    what it will answer again (:class:`SourceRefused`: an HTTP 4xx) will fail
    the same way on every retry: it becomes ``AirflowFailException`` (no
    retries) carrying the one-line reason. What can heal — a source or storage unreachable
    (:class:`SourceUnavailable`), HTTP 5xx, a bug — is raised as it is, for
    the task's retries with backoff. An object store's own errors are said
    as one of these (:func:`etl.storage.store_error`): no or wrong
    credentials fail at once, an unreachable endpoint is retried. :class:`NotReady` (an input not
    published yet) skips the task: its publication schedules the DAG again.
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from etl import native_panics
    from etl.errors import AccountingError, BadInput, ConfigError, NotReady, SourceRefused, ValidationFailed, one_line
    from etl.storage import store_error

    native_panics.install()  # a delta-rs worker thread's panic text stays out of the task log
    try:
        return call()
    except AirflowException:
        raise  # Airflow's own signals (reschedule, skip, fail) pass as they are
    except NotReady as exc:
        # Nothing to build on yet: not a failure, and no retry — the input's publication (its Asset) runs
        # the DAG again. The task is skipped with the one line saying what it waits for.
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(one_line(str(exc))) from None
    except (BadInput, ValidationFailed, AccountingError, ConfigError, SourceRefused) as exc:
        raise _refused(AirflowFailException(f"{one_line(str(exc))}{_quality_link()}")) from None
    except Exception as exc:
        known = store_error(exc)  # an object store refusing (fail now) or unreachable (retry), said in one line
        if isinstance(known, ConfigError):
            raise _refused(AirflowFailException(one_line(str(known)))) from None
        if known is not None:
            raise known from None
        raise


def _refused(failure: BaseException) -> BaseException:
    failure.etl_refused = True  # type: ignore[attr-defined]  # one of fail_fast's: run_task ends the log with it
    return failure


class TaskRefused(SystemExit):
    """A task failed for bad data, ending its log with the one line that says why, without a traceback.

    Why a ``SystemExit``: the Airflow 3 task runner
    (``airflow.sdk.execution_time.task_runner._run_task_and_map_outcome``) logs every failing exception
    with ``log.exception`` — its traceback, about 13 frames of Airflow's own, after the line — except a
    ``SystemExit``, which it logs as ``Task exited exit_code=…`` and then hands to the task's retry policy
    like any failure. :func:`refusal_policy` (every task's, :func:`default_args`) fails it at once, so the
    task ends FAILED without retries, exactly as ``AirflowFailException`` would. Public Airflow API only
    (``retry_policy``, ``ExceptionRetryPolicy``), no patched internals; tests/test_task_log.py runs a real
    task and reads its log, so an Airflow that changes this fails a test. Being no ``Exception``, it also
    passes every ``except Exception`` between the task and the runner. ``str()`` is the line.
    """

    def __init__(self, line: str):
        super().__init__(1)  # the runner logs "Task exited exit_code=1"
        self.line = line

    def __str__(self) -> str:
        return self.line


def run_task(call: Callable[[], _T]) -> _T:
    """What a DAG task runs: ``call()`` through :func:`fail_fast`, its no-retry failures ending the log cleanly.

    A failure :func:`fail_fast` makes (bad data, an unusable setting, a refusing store) is logged as the
    task's last line of its own — the reason, and for bad data the absolute link to the run's data-quality
    page; only Airflow's ``Task exited exit_code=1`` follows — and fails the task at once without a
    traceback (:class:`TaskRefused`). What can heal (a store or source
    unreachable, a bug) is raised as it is: retried with backoff, its traceback kept.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return fail_fast(call)
    except AirflowFailException as exc:
        if not getattr(exc, "etl_refused", False):
            raise
        line = str(exc)
        log.error("%s", line)
        raise TaskRefused(line) from None


# How long a task waits, in all, for files still being written (up_for_reschedule, no worker slot held) before it
# fails naming them; at least one settle interval is always waited.
ARRIVING_WAIT = dt.timedelta(hours=1)


def wait_for_arriving(report: Any, context: Any = None, now: dt.datetime | None = None) -> None:
    """No green run over an unjudged file: a landing-fed task whose run found files still being written
    (``report.arriving``, :class:`etl.pipelines.common.RunReport`) waits for them, then judges them.

    The task is rescheduled (``AirflowRescheduleException``: up_for_reschedule, holding neither a worker
    slot nor the writer pool's) to run again when they will have been left alone for the settle interval
    (``report.settled_by``); that run judges them (what it published already is ``unchanged``). A sender
    still writing after :data:`ARRIVING_WAIT` fails the task — one line, no retries (:class:`BadInput`,
    call this inside :func:`run_task`) — naming the files and the next scheduled run, which judges them.
    Returns when nothing is arriving.
    """
    if not report.arriving:
        return
    from airflow.sdk.exceptions import AirflowRescheduleException

    from etl.errors import BadInput

    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    now = now or dt.datetime.now(dt.UTC)
    first = context["ti"].get_first_reschedule_date(context)  # when the first try began waiting; None: it is this one
    settled = dt.datetime.fromtimestamp(report.settled_by, dt.UTC) if report.settled_by else now
    when = max(settled, now) + dt.timedelta(seconds=1)
    names = ", ".join(map(repr, report.arriving[:10])) + (
        f" and {len(report.arriving) - 10} more" if len(report.arriving) > 10 else ""
    )
    if first is not None and when - first > ARRIVING_WAIT:
        waited = (now - first).total_seconds() / 60
        raise BadInput(
            f"{len(report.arriving)} file(s) still being written after waiting {waited:.0f} min, not judged: "
            f"{names}; {_next_run(context, now)} judges them once they are left alone (or trigger the DAG then)"
        )
    line = (
        f"{len(report.arriving)} file(s) still arriving, not judged yet: {names}; this task waits for them "
        f"(up_for_reschedule, no worker slot held) and judges them at {when:%Y-%m-%d %H:%M:%S} UTC"
    )
    log.warning("%s", line)
    raise AirflowRescheduleException(when)


def _next_run(context: Mapping[str, Any], now: dt.datetime) -> str:
    """``the next scheduled run (2026-12-08 00:00 UTC)``, as far as the DAG's schedule tells."""
    dag = context.get("dag")
    timetable = getattr(dag, "timetable", None)
    expression = getattr(timetable, "expression", None)
    if expression:
        try:
            from croniter import croniter  # type: ignore[import-untyped]  # Airflow's own cron library

            after = croniter(expression, now.astimezone(dt.UTC)).get_next(dt.datetime)
            return f"the next scheduled run ({after:%Y-%m-%d %H:%M} UTC)"
        except Exception:  # noqa: BLE001 - a schedule croniter cannot read: said without its time
            pass
    summary = getattr(timetable, "summary", None)
    return f"the next scheduled run ({summary})" if summary else "the next run"


QUALITY_PAGE = "/etl-quality/run/{dag_id}/{run_id}"  # plugins/etl_quality_plugin.py: the run's "Data quality" tab


def quality_url(dag_id: str, run_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The run's data-quality page as a link a person can click in a task log.

    Absolute from Airflow's ``[api] base_url`` (``AIRFLOW__API__BASE_URL``, set by docker-compose.yml), else
    from ``[api] host``/``port`` as `make airflow` sets them (``http://127.0.0.1:8080``); a path alone only
    when neither is known.
    """
    from urllib.parse import quote

    env = os.environ if environ is None else environ
    path = QUALITY_PAGE.format(dag_id=quote(dag_id, safe=""), run_id=quote(run_id, safe=""))
    base = (env.get("AIRFLOW__API__BASE_URL") or "").rstrip("/")
    if not base and env.get("AIRFLOW__API__PORT"):
        host = env.get("AIRFLOW__API__HOST") or "127.0.0.1"
        base = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{env['AIRFLOW__API__PORT']}"
    return base + path


def _quality_link() -> str:
    """``; data quality: http://…/etl-quality/run/<dag>/<run>`` for the running task, or "" outside a task.

    The link ends the line, after a space: the log viewer links ``http(s)://`` up to the next space, so
    anything after it (a closing parenthesis) would become part of the address.
    """
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
    except Exception:  # no task context (tests, the CLI)
        return ""
    return f"; data quality: {quality_url(dag_id, run_id)}"


def use_object_store_connection(conn_id: str = OBJECT_STORE_CONN) -> bool:
    """Credentials for ``s3://`` URIs from an Airflow Connection, into this task process's environment.

    The Connection (type ``aws``, Admin → Connections) holds the access key id
    as login, the secret as password, and in its extra ``endpoint_url`` (an
    on-premises store: MinIO, Ceph, SeaweedFS) and ``region_name``. s3fs,
    botocore and delta-rs all read the standard variables, so this is the one
    place a DAG's credentials are set; without the Connection the worker's
    own environment (or an instance role) applies. Returns whether it was found.
    """
    import os

    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # not defined (the usual case on local disk), or no metadata DB reachable
        return False
    extra = conn.extra_dejson or {}
    values = {
        "AWS_ACCESS_KEY_ID": conn.login,
        "AWS_SECRET_ACCESS_KEY": conn.password,
        "AWS_ENDPOINT_URL": extra.get("endpoint_url"),
        "AWS_REGION": extra.get("region_name"),
        "AWS_DEFAULT_REGION": extra.get("region_name"),
    }
    for name, value in values.items():
        if value:
            os.environ[name] = str(value)
    return True


def month_of_run(
    data_interval_start: dt.datetime | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
    conf: dict | None = None,
) -> str:
    """The month a monthly run handles, as YYYY-MM.

    Scheduled runs handle their data interval's month. Manual runs in
    Airflow 3 have no logical date: they take ``conf["period"]`` if given,
    else the last complete month before ``run_after``.
    """
    if conf and conf.get("period"):
        return str(conf["period"])
    start = data_interval_start or logical_date
    if start is not None:
        return f"{start.year:04d}-{start.month:02d}"
    when = run_after or dt.datetime.now(dt.UTC)
    first = when.replace(day=1)
    previous = first - dt.timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"
