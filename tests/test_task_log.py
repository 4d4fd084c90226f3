"""Issue 24 A: a bad-data failure's task log ends with its one line and a link, with no traceback.

Before, the task log of a refused file held the line and then Airflow's "Task failed with exception" with
about 13 frames of Airflow's own traceback (``error_detail``, which the log viewer shows as the traceback).
Every DAG task now runs through :func:`etl.orchestration.run_task`: a failure that would fail again is
logged as one line ending in the absolute link to the run's data-quality page, and the task fails at once
through its retry policy (``TaskRefused``, a ``SystemExit``, which the task runner logs without a
traceback). Here a real DAG run under Airflow's task supervisor (``scripts/dags_test.py``, as ``make demo``
runs it), its task log file read back as the UI reads it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_run_support import ROOT, airflow_env, task_log, task_states, visible

BASE_URL = "https://airflow.agency.example"


@pytest.mark.slow
def test_a_refused_file_ends_the_task_log_with_its_line_and_link_and_no_traceback(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    (landing / "county_reports").mkdir(parents=True)
    # A web-form export with a key the form never writes: refused whole, the same on every retry.
    (landing / "county_reports" / "region-x.json").write_text('{"regionn": "01"}', encoding="utf-8")
    env = airflow_env(tmp_path, landing, warehouse, AIRFLOW__API__BASE_URL=BASE_URL)

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dags_test.py"), "county_reports"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    console = out.stdout + out.stderr
    assert out.returncode != 0 and "state=failed" in console, console[-3000:]
    # FAILED at the first try: not up for retry, not skipped, not a success.
    assert task_states(env, "county_reports") == [("load_new_reports", "failed", 1)]

    events = task_log(env, "county_reports", "load_new_reports")
    raw = json.dumps(events)
    assert "Traceback" not in raw and not any("error_detail" in e for e in events), raw[-3000:]
    assert not any(e.get("event") == "Task failed with exception" for e in events)

    shown = visible(events)
    *_, line, exited = shown
    # The one line: the file, the rule it breaks, the value, ending in the run's data-quality page.
    assert line["level"] == "error", line
    text = line["event"]
    assert "region-x.json" in text and "unknown key" in text and "'regionn'" in text, text
    link = re.search(r"; data quality: (\S+)$", text)
    assert link, text
    attempt_log = next((Path(env["AIRFLOW_HOME"]) / "logs").rglob("attempt=1.log")).as_posix()
    run_id = re.search(r"run_id=([^/]+)/", attempt_log)
    assert run_id, attempt_log
    from urllib.parse import quote

    assert link.group(1) == f"{BASE_URL}/etl-quality/run/county_reports/{quote(run_id.group(1), safe='')}"
    # What follows it is Airflow's own one-word marker, no traceback: "Task exited exit_code=1".
    assert exited["event"] == "Task exited" and exited.get("exit_code") == 1, exited
    # Airflow's decision, inside the collapsed "Post Execute" group: failed at once by the retry policy.
    assert any(e.get("event") == "Retry policy decision" and e.get("action") == "fail" for e in events), raw[-2000:]


# --------------------------------------------------------------------------- the pieces, without Airflow running


def test_run_task_logs_the_line_and_fails_with_no_exception_to_trace(monkeypatch):
    from etl import orchestration
    from etl.errors import BadInput

    def run():
        raise BadInput("webbtidbok_2026-01.csv: line 7: region 'Norrbottn' unknown")

    logged: list[tuple] = []
    monkeypatch.setattr(orchestration.log, "error", lambda *args, **kwargs: logged.append((args, kwargs)))
    with pytest.raises(orchestration.TaskRefused) as failed:
        orchestration.run_task(run)
    assert str(failed.value) == "webbtidbok_2026-01.csv: line 7: region 'Norrbottn' unknown"
    assert isinstance(failed.value, SystemExit) and not isinstance(failed.value, Exception)
    assert failed.value.code == 1  # the runner's "Task exited exit_code=1"
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    # Logged once, at error level, with no exception (so no traceback) attached.
    assert logged == [(("%s", str(failed.value)), {})]


def test_what_can_heal_keeps_its_exception_and_traceback_for_the_retries():
    from etl import orchestration
    from etl.errors import SourceUnavailable

    def run():
        raise SourceUnavailable("SCB: HTTP 503 after 5 attempts")

    with pytest.raises(SourceUnavailable):
        orchestration.run_task(run)
    with pytest.raises(ZeroDivisionError):  # a bug stays a bug: traceback, retries
        orchestration.run_task(lambda: 1 / 0)
    assert orchestration.run_task(lambda: 42) == 42


def test_an_airflow_failure_that_is_not_the_pipelines_own_passes_as_it_is():
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from etl import orchestration

    def fail():
        raise AirflowFailException("raised by an operator")

    with pytest.raises(AirflowFailException):
        orchestration.run_task(fail)

    def skip():
        raise AirflowSkipException("nothing to do")

    with pytest.raises(AirflowSkipException):
        orchestration.run_task(skip)


def test_every_task_fails_a_refusal_at_once_and_retries_anything_else():
    from airflow.sdk import RetryAction

    from etl import orchestration
    from etl.errors import SourceUnavailable

    policy = orchestration.default_args()["retry_policy"]
    assert policy.evaluate(orchestration.TaskRefused("x"), 1, 3).action is RetryAction.FAIL
    assert policy.evaluate(SourceUnavailable("down"), 1, 3).action is RetryAction.DEFAULT
    assert policy.evaluate(SystemExit(1), 1, 3).action is RetryAction.DEFAULT  # only ours fails at once


def test_the_link_ends_the_line_so_the_log_viewer_links_all_of_it(monkeypatch):
    """The log viewer links ``http(s)://`` up to the next white space: a ")" after it became part of the link."""
    import types

    import airflow.sdk

    from etl import orchestration

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    context = {"dag": types.SimpleNamespace(dag_id="ehealth_adoption"), "run_id": "manual__2026-03-01T08:00:00+00:00"}
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: context)
    link = orchestration._quality_link()
    assert (
        link == f"; data quality: {BASE_URL}/etl-quality/run/ehealth_adoption/manual__2026-03-01T08%3A00%3A00%2B00%3A00"
    )
    assert re.search(r"\shttps?://\S+$", link)
