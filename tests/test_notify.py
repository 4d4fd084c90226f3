"""Issue 15 §5: notifications reach people through the Connection etl_notify — a real SMTP server, a webhook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SEND = r"""
import sys
from etl.notify import notify
print("sent" if notify(sys.argv[1], sys.argv[2]) else "not sent")
"""


def _send(tmp_path, subject: str, text: str, connection: dict | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/airflow.db",
    )
    if connection is not None:
        env["AIRFLOW_CONN_ETL_NOTIFY"] = json.dumps(connection)
    out = subprocess.run(
        [sys.executable, "-c", SEND, subject, text], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def smtp_sink():
    """A real SMTP server on 127.0.0.1 (aiosmtpd) keeping every message it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as probe:  # a free port (aiosmtpd checks readiness by connecting to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler.messages
    finally:
        controller.stop()


def test_a_failure_reaches_the_mailbox_through_an_smtp_connection(tmp_path, smtp_sink):
    port, received = smtp_sink
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {
            "to": "ops@agency.example, oncall@agency.example",
            "from": "etl@agency.example",
            "disable_tls": True,
            "disable_ssl": True,
        },
    }
    text = "2019-03: journalen_2019-03.csv: blocked, lacks 1 region(s) (landing http://u:s3cret@host/x)"
    assert _send(tmp_path, "[etl] ehealth_adoption.load_month failed", text, connection) == "sent"
    [message] = received
    assert sorted(message.rcpt_tos) == ["oncall@agency.example", "ops@agency.example"]
    import email

    parsed = email.message_from_bytes(message.content)
    body = ""
    for part in parsed.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)  # a text part's body decoded from its transfer encoding
            assert isinstance(payload, bytes), payload
            body += payload.decode("utf-8")
    assert parsed["Subject"] == "[etl] ehealth_adoption.load_month failed"
    assert "journalen_2019-03.csv: blocked" in body
    assert "s3cret" not in body  # credentials never travel in a notification


def test_a_webhook_connection_gets_the_text_as_json(tmp_path, httpserver):
    httpserver.expect_request("/hooks/etl", method="POST").respond_with_data("ok")
    connection = {"conn_type": "http", "extra": {"url": httpserver.url_for("/hooks/etl")}}
    assert _send(tmp_path, "[etl] overdue", "journalen_2026-01 is overdue", connection) == "sent"
    [(request, _)] = httpserver.log
    assert request.get_json() == {"text": "[etl] overdue\njournalen_2026-01 is overdue"}


def test_without_a_notifier_nothing_is_sent_and_nothing_fails(tmp_path):
    assert _send(tmp_path, "subject", "text", None) == "not sent"


def test_a_notifier_that_is_down_does_not_fail_the_caller(tmp_path):
    connection = {"conn_type": "http", "extra": {"url": "http://127.0.0.1:9/hooks"}}
    assert _send(tmp_path, "subject", "text", connection) == "not sent"
