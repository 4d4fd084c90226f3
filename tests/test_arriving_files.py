"""Issue 24 B: no green run over an unjudged file.

A landing-fed run that found a file still being written (modified less than ``ETL_LANDING_SETTLE_SECONDS``
ago) logged a warning and ended green; the next scheduled run (tomorrow, next month) judged the file. Now
the DAG task waits for it up_for_reschedule (no worker slot, no writer pool slot held) and judges it once
it has settled, or fails naming it after :data:`etl.orchestration.ARRIVING_WAIT`; the CLI exits 3 with a
line saying when to run again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from airflow_run_support import airflow_env, task_log

ROOT = Path(__file__).resolve().parent.parent
STILL_WRITTEN = "arsrapport_2019_01_region-stockholm"  # region 01's report, the one a sender is still writing


def _county_landing(root: Path) -> Path:
    """The sample's 21 county reports for 2019 (plus one correction), all delivered an hour ago."""
    from etl.sample import county_reports

    county_reports.write(root, 2019, 2019)
    (root / "README-county_reports.txt").unlink()
    folder = root / "county_reports"
    old = time.time() - 3600
    for path in folder.iterdir():
        os.utime(path, (old, old))
    return next(p for p in folder.iterdir() if p.stem == STILL_WRITTEN)


def _query(env: dict[str, str], sql: str, *args) -> list[tuple]:
    """A read of the run's SQLite metadata database while Airflow writes it (retried while it is locked)."""
    for _ in range(50):
        try:
            with sqlite3.connect(f"file:{env['AIRFLOW_HOME']}/airflow.db?mode=ro", uri=True, timeout=5) as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            time.sleep(0.2)
    raise AssertionError(f"metadata database locked: {sql}")


def _regions(warehouse: Path) -> set[str]:
    from etl import publish

    try:
        return set(publish.read_table(str(warehouse), "county_report").column("region_code").to_pylist())
    except Exception:  # noqa: BLE001 - nothing published yet
        return set()


@pytest.mark.slow
def test_a_file_still_being_written_is_waited_for_without_a_green_run_and_then_judged(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    still = _county_landing(landing)
    env = airflow_env(tmp_path, landing, warehouse, ETL_LANDING_SETTLE_SECONDS="3")

    # The sender keeps writing region 01's report (its modification time now, again and again) until the run
    # has seen it being written and left it for later; from then on it is left alone.
    seen: dict[str, list[tuple] | set[str]] = {}  # the dag_run rows, the regions published
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            now = time.time()
            os.utime(still, (now, now))
            stop.wait(0.3)

    writer = threading.Thread(target=sender, daemon=True)
    writer.start()
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "dags_test.py"), "county_reports"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while run.poll() is None and not stop.is_set():
            states = _query(env, "SELECT state FROM task_instance WHERE dag_id = 'county_reports'")
            if states == [("up_for_reschedule",)]:
                stop.set()
                # While the file is unjudged the run is not green: still running, its task waiting.
                seen["dag_run"] = _query(env, "SELECT state FROM dag_run WHERE dag_id = 'county_reports'")
                seen["regions"] = _regions(warehouse)
            assert time.monotonic() - started < 300, "no reschedule within 5 minutes"
            time.sleep(0.2)
        console, _ = run.communicate(timeout=600)
    finally:
        stop.set()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0 and "state=success" in console, console[-4000:]
    assert seen, f"the task never waited up_for_reschedule:\n{console[-4000:]}"
    assert seen["dag_run"] == [("running",)], seen
    # The first try published the 20 settled reports and not the one still being written.
    assert "01" not in seen["regions"] and len(seen["regions"]) == 20, seen["regions"]

    # Then judged: the same run ends green with region 01 published, after at least one reschedule.
    assert _regions(warehouse) >= {"01"} and len(_regions(warehouse)) == 21
    assert _query(env, "SELECT state, try_number FROM task_instance WHERE dag_id = 'county_reports'") == [
        ("success", 1)
    ]
    assert _query(env, "SELECT count(*) FROM task_reschedule")[0][0] >= 1
    events = [e.get("event", "") for e in task_log(env, "county_reports", "load_new_reports")]
    waiting = [e for e in events if "still arriving, not judged yet" in e]
    assert waiting and f"'{STILL_WRITTEN}." in waiting[0], waiting
    assert "up_for_reschedule" in waiting[0] and " UTC" in waiting[0]
    assert "Rescheduling task, marking task as UP_FOR_RESCHEDULE" in events
    assert events.index("Rescheduling task, marking task as UP_FOR_RESCHEDULE") < max(
        i for i, e in enumerate(events) if e.startswith("county_reports: 1 file(s): 1 report(s) loaded")
    )


# --------------------------------------------------------------------------- the CLI


def test_the_cli_exits_3_naming_the_files_not_judged_and_when_to_run_again(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    still = _county_landing(landing)
    os.utime(still)  # written just now
    env = {**os.environ, "ETL_LANDING_SETTLE_SECONDS": "60"}
    command = [
        sys.executable,
        "-m",
        "etl",
        "run",
        "county-reports",
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
    ]
    before = dt.datetime.now(dt.UTC)
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"county-reports: 1 file(s) still arriving, not judged: '{still.name}'; run again after "), (
        last
    )
    after = dt.datetime.strptime(last.rsplit("after ", 1)[1], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=dt.UTC)
    assert before + dt.timedelta(seconds=55) < after < dt.datetime.now(dt.UTC) + dt.timedelta(seconds=62)
    assert "01" not in _regions(warehouse) and len(_regions(warehouse)) == 20  # the rest is published

    # Once it has settled, the same command judges it and exits 0.
    out = subprocess.run(
        command, env={**env, "ETL_LANDING_SETTLE_SECONDS": "0"}, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "still arriving" not in out.stderr
    assert "01" in _regions(warehouse)


def test_run_all_ends_stderr_with_the_files_not_judged_after_every_pipeline_ran(tmp_path):
    """Found by a reviewer: with `run all` the "still arriving" line came before the later pipelines' lines."""
    from etl.sample import reference

    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    still = _county_landing(landing)
    reference.write(landing, 2019, 2019, units=1, unit_months=0, seed=1)
    os.utime(still)  # written just now
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "run",
            "all",
            "--offline-snapshot",
            "--landing",
            str(landing),
            "--warehouse",
            str(warehouse),
        ],
        env={**os.environ, "ETL_LANDING_SETTLE_SECONDS": "60"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"county-reports: 1 file(s) still arriving, not judged: '{still.name}'"), last
    assert "running followup" in out.stderr  # it ran, before the line


# --------------------------------------------------------------------------- the pieces


def _report(names, settled_by):
    return types.SimpleNamespace(arriving=list(names), settled_by=settled_by)


def _context(first):
    ti = types.SimpleNamespace(get_first_reschedule_date=lambda context: first)
    dag = types.SimpleNamespace(dag_id="county_reports", timetable=types.SimpleNamespace(expression="0 0 * * *"))
    return {"ti": ti, "dag": dag}


def test_nothing_arriving_is_nothing_to_wait_for():
    from etl import orchestration

    orchestration.wait_for_arriving(_report([], None), _context(None))  # returns (-> None): no reschedule


def test_the_task_is_rescheduled_for_when_the_files_will_have_settled():
    from airflow.sdk.exceptions import AirflowRescheduleException

    from etl import orchestration

    now = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    settled_by = (now + dt.timedelta(seconds=60)).timestamp()
    with pytest.raises(AirflowRescheduleException) as waiting:
        orchestration.wait_for_arriving(_report(["a.xlsx", "b.json"], settled_by), _context(None), now)
    assert waiting.value.reschedule_date == now + dt.timedelta(seconds=61)
    # Still being written 50 minutes on: waits again.
    with pytest.raises(AirflowRescheduleException):
        orchestration.wait_for_arriving(
            _report(["a.xlsx"], (now + dt.timedelta(minutes=51)).timestamp()),
            _context(now),
            now + dt.timedelta(minutes=50),
        )


def test_a_file_still_written_after_the_bound_fails_the_task_naming_it_and_when_it_is_judged():
    from airflow.sdk.exceptions import AirflowFailException

    from etl import orchestration

    first = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    now = first + orchestration.ARRIVING_WAIT
    report = _report(["webbtidbok_enheter_2026-02.csv"], (now + dt.timedelta(seconds=60)).timestamp())
    with pytest.raises(AirflowFailException) as failed:  # what run_task turns into its one line, no retries
        orchestration.fail_fast(lambda: orchestration.wait_for_arriving(report, _context(first), now))
    line = str(failed.value)
    assert line == (
        "1 file(s) still being written after waiting 60 min, not judged: 'webbtidbok_enheter_2026-02.csv'; "
        "the next scheduled run (2026-03-03 00:00 UTC) judges them once they are left alone (or trigger "
        "the DAG then)"
    )


@pytest.mark.parametrize(
    ("name", "period", "catch_up", "judged"),
    [
        ("journalen_2026-02.csv", None, False, True),
        ("journalen_2026-02.csv", "2026-02", False, True),
        ("journalen_2026-01.csv", "2026-02", False, False),
        ("journalen_2026-01.csv", "2026-02", True, True),
        ("journalen_2026-03.csv", "2026-02", True, False),  # a later month: another run's
        ("export-feb.csv", "2026-02", True, True),  # no export's name: this run names it once it has settled
    ],
)
def test_an_ehealth_run_waits_only_for_the_files_it_would_judge(name, period, catch_up, judged):
    from etl.pipelines import ehealth_adoption

    assert ehealth_adoption._judged_here(name, period, catch_up) is judged


def test_the_run_report_names_the_files_still_arriving(tmp_path):
    from etl.pipelines import common
    from tests.settings_support import local_settings

    (tmp_path / "landing" / "ehealth").mkdir(parents=True)
    for name in ("journalen_2026-01.csv", "journalen_2026-02.csv"):
        (tmp_path / "landing" / "ehealth" / name).write_text("x")
    old = time.time() - 3600
    os.utime(tmp_path / "landing" / "ehealth" / "journalen_2026-01.csv", (old, old))
    settings = local_settings(
        tmp_path / "landing", tmp_path / "warehouse", environ={"ETL_LANDING_SETTLE_SECONDS": "60"}
    )
    report = common.RunReport("ehealth_adoption", "b1")
    listed = time.time()
    intake = common.take_in(settings, "ehealth", (".csv",), report)
    assert [f.name for f in intake.landed] == ["journalen_2026-01.csv"]
    assert report.arriving == ["journalen_2026-02.csv"]
    assert report.settled_by is not None
    assert listed + 59 < report.settled_by < time.time() + 61
    assert json.dumps(report.to_dict())  # still JSON-safe for XCom
