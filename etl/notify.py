"""Notifications: failures, blocked deliveries and overdue months reach people.

One notifier, configured by an admin as the Airflow Connection
:data:`CONN_ID` (``etl_notify``):

* type ``smtp`` (Airflow's SMTP provider): host, port, login, password;
  extra ``{"to": "a@agency.se, b@agency.se", "from": "etl@agency.se"}``
  (and ``"disable_tls": true`` for a relay without TLS). Sent with the
  provider's ``SmtpHook``.
* type ``http``/``https`` — an incoming webhook (Slack, Microsoft Teams,
  Mattermost): the webhook URL as host (plus schema, port and path as usual;
  or the whole URL in extra ``{"url": …}``). The message is POSTed as
  ``{"text": …}``, which those services accept.

Without the Connection, nothing is sent and the log says so once per
process. Messages carry no credentials (:func:`etl.privacy.redact_uri`) and
are bounded; sending never fails the task that notifies (the failure is
what matters, and is logged).
"""

from __future__ import annotations

import logging

from etl.privacy import redact_uri

log = logging.getLogger(__name__)

CONN_ID = "etl_notify"
MAX_CHARS = 3000
_warned = False


def notify(subject: str, text: str, conn_id: str = CONN_ID) -> bool:
    """Send ``subject`` and ``text`` through the notifier Connection; True when sent."""
    global _warned
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # not defined, or no Airflow here (the CLI): nothing to send through
        if not _warned:
            log.info("no notifier: define the Airflow Connection %s (smtp or a webhook) to be notified", conn_id)
            _warned = True
        return False
    subject = redact_uri(subject)[:200]
    text = redact_uri(text)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + " …"
    try:
        if (conn.conn_type or "").lower() in ("smtp", "email"):
            _send_mail(conn, conn_id, subject, text)
        else:
            _post_webhook(conn, subject, text)
    except Exception as exc:  # noqa: BLE001 - a notifier outage must not hide or replace the failure itself
        log.warning("could not notify through %s: %s: %s", conn_id, type(exc).__name__, redact_uri(str(exc))[:300])
        return False
    return True


def _send_mail(conn, conn_id: str, subject: str, text: str) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    extra = conn.extra_dejson or {}
    to = [a.strip() for a in str(extra.get("to", "")).replace(";", ",").split(",") if a.strip()]
    if not to:
        raise ValueError(f"Connection {conn_id} has no 'to' in its extra")
    sender = extra.get("from") or extra.get("from_email") or conn.login
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=_as_html(text), from_email=sender)


def _as_html(text: str) -> str:
    import html

    return "<pre style='font-family: sans-serif; white-space: pre-wrap'>" + html.escape(text) + "</pre>"


def _post_webhook(conn, subject: str, text: str) -> None:
    import httpx

    extra = conn.extra_dejson or {}
    url = extra.get("url")
    if not url:
        host = (conn.host or "").rstrip("/")
        if "://" not in host:
            host = f"{conn.schema or conn.conn_type or 'https'}://{host}"
        url = host + (f":{conn.port}" if conn.port else "")
    response = httpx.post(url, json={"text": f"{subject}\n{text}"}, timeout=10.0)
    response.raise_for_status()


def on_failure(context) -> None:
    """Airflow ``on_failure_callback``: the failed task, its run and its one-line reason, to the notifier."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = getattr(ti, "run_id", "?")
    error = context.get("exception")
    reason = str(error).splitlines()[0] if error else "see the task log"
    notify(f"[etl] {dag_id}.{task_id} failed", f"DAG {dag_id}, task {task_id}, run {run_id}:\n{reason}")
