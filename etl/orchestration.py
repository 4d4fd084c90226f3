"""The little the DAGs need from the library: settings from Airflow, asset names, run periods.

Airflow is imported inside functions only, so this module (and ``etl``)
import without Airflow installed.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping

from etl.config import Settings

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
        # After the last retry: the failure and its one-line reason to the notifier (Connection etl_notify).
        "on_failure_callback": notify_failure,
    }


def notify_failure(context) -> None:
    """``on_failure_callback`` of every task: see :func:`etl.notify.on_failure`."""
    from etl.notify import on_failure

    on_failure(context)


def asset_uri(table: str) -> str:
    """The Airflow Asset URI of a published table (one per table, shared by producer and consumers)."""
    return f"file://warehouse/{table}"


def settings_from_airflow(conf: dict | None = None, accepted: frozenset[str] | set[str] = frozenset()) -> Settings:
    """Settings for a task: Airflow Variables and Connections > environment > defaults.

    ``conf`` is the run conf; ``accepted`` the keys the DAG declares as
    Params (its run options). Any other key is refused with one line
    (:class:`ConfigError`): storage locations and API endpoints are admin
    territory (Variables, Connections), never something whoever may trigger
    a run can redirect.
    """
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
    return Settings.resolve(
        landing=var(VAR_LANDING),
        warehouse=var(VAR_WAREHOUSE),
        scb_base_url=connection_url("scb_default"),
        kolada_base_url=connection_url("kolada_default"),
        kolada_kpis=var(VAR_KOLADA_KPIS),
    )


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
    from airflow.sdk.exceptions import AirflowFailException

    from etl import native_panics
    from etl.errors import AccountingError, BadInput, ConfigError, NotReady, SourceRefused, ValidationFailed, one_line
    from etl.storage import store_error

    native_panics.install()  # a delta-rs worker thread's panic text stays out of the task log
    try:
        return call()
    except NotReady as exc:
        # Nothing to build on yet: not a failure, and no retry — the input's publication (its Asset) runs
        # the DAG again. The task is skipped with the one line saying what it waits for.
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(one_line(str(exc))) from None
    except (BadInput, ValidationFailed, AccountingError, ConfigError, SourceRefused) as exc:
        raise AirflowFailException(f"{one_line(str(exc))}{_quality_link()}") from None
    except Exception as exc:
        known = store_error(exc)  # an object store refusing (fail now) or unreachable (retry), said in one line
        if isinstance(known, ConfigError):
            raise AirflowFailException(one_line(str(known))) from None
        if known is not None:
            raise known from None
        raise


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
    """`` (data quality: http://…/etl-quality/run/<dag>/<run>)`` for the running task, or "" outside a task."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
    except Exception:  # no task context (tests, the CLI)
        return ""
    return f" (data quality: {quality_url(dag_id, run_id)})"


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
