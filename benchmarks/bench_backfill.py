"""3. Whole backfill of the e-health sample (2016–2025) through Airflow vs the CLI.

Same landing files, fresh warehouse each time:

* **CLI** — ``python -m etl run ehealth-adoption`` (every pending month in one process): the baseline;
* **Airflow, one run** — ``airflow dags test ehealth_adoption -c '{"period": "all"}'``
  (one DAG run that catches up every month);
* **Airflow, run per month** — ``airflow dags test ehealth_adoption <month>`` for
  the first BENCH_BACKFILL_MONTHS months, extrapolated to 120 months (what a
  scheduler backfill costs: one run per data interval, each paying task
  start-up — interpreter, imports, GX context);
* **Airflow scheduler backfill** — the real thing: ``airflow backfill create``
  over the first BENCH_SCHED_MONTHS months (default 12: 2016-01..2016-12),
  run by ``airflow scheduler`` (LocalExecutor) + ``dag-processor`` +
  ``api-server`` (the execution API task runners talk to) on a fresh
  PostgreSQL database at 127.0.0.1:5432 (user postgres, trust), timed from
  ``backfill create`` to the end of the last successful run; compared with
  the CLI doing the same months one process per month
  (``python -m etl run ehealth-adoption --period YYYY-MM``, measured, not
  scaled). Skipped (with a message) when PostgreSQL is unreachable or
  BENCH_SCHED_MONTHS=0.

Reports seconds and the Airflow overhead factor against the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, env_with_project, machine, sample_warehouse, table  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from integration_support import ProcessGroups, ScratchDatabase, free_port  # noqa: E402

PER_MONTH = int(os.environ.get("BENCH_BACKFILL_MONTHS", "3"))
SCHED_MONTHS = int(os.environ.get("BENCH_SCHED_MONTHS", "12"))
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
DAG_ID = "ehealth_adoption"
STARTUP_TIMEOUT = 300
# Generous: a month normally takes seconds; a stuck run must still end the benchmark.
RUN_TIMEOUT_PER_MONTH = 300
AIRFLOW = str(Path(PYTHON).parent / "airflow")


def timed(cmd, env) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-1500:] + out.stderr[-1500:])
    return time.perf_counter() - start


def main() -> None:
    landing, _ = sample_warehouse()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    env = env_with_project(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{work}/airflow/airflow.db",
        AIRFLOW_VAR_ETL_LANDING_URI=str(landing),
    )
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [AIRFLOW, "pools", "set", "etl_warehouse_writer", "1", "bench"], env=env, check=True, capture_output=True
    )
    months = len(list((landing / "ehealth").glob("journalen_*")))

    cli_wh = work / "wh-cli"
    cli = timed(
        [PYTHON, "-m", "etl", "run", "ehealth-adoption", "--landing", str(landing), "--warehouse", str(cli_wh)], env
    )
    one_wh = work / "wh-one"
    one = timed(
        [AIRFLOW, "dags", "test", "ehealth_adoption", "-c", json.dumps({"period": "all"})],
        dict(env, AIRFLOW_VAR_ETL_WAREHOUSE_URI=str(one_wh)),
    )
    per_wh = work / "wh-per-month"
    per = 0.0
    for i in range(PER_MONTH):
        date = f"2016-{i + 2:02d}-01"  # the run for month i+1 starts at the end of its interval
        per += timed(
            [AIRFLOW, "dags", "test", "ehealth_adoption", date, "-c", "{}"],
            dict(env, AIRFLOW_VAR_ETL_WAREHOUSE_URI=str(per_wh)),
        )
    per_each = per / PER_MONTH
    rows = [
        ["CLI, all months in one process", months, cli, 1.0],
        ["Airflow dags test, one run catching up", months, one, one / cli],
        [
            f"Airflow dags test, one run per month (extrapolated from {PER_MONTH})",
            months,
            per_each * months,
            per_each * months / cli,
        ],
    ]
    print(f"Backfill of {months} months of e-health exports + 12 unit-level months ({machine()})")
    print(table(["path", "months", "seconds", "x CLI"], rows))
    print(f"per-month run: {per_each:.1f} s each")
    shutil.rmtree(work, ignore_errors=True)
    if SCHED_MONTHS > 0:
        scheduler_backfill(landing, SCHED_MONTHS, cli_all_per_month=cli / months)


# --- the real scheduler path ---------------------------------------------------------


def _months(count: int) -> list[str]:
    return [f"{2016 + i // 12}-{i % 12 + 1:02d}" for i in range(count)]


def _pg_unreachable() -> str | None:
    import psycopg2

    try:
        psycopg2.connect(connect_timeout=5, **PG_ADMIN).close()
    except psycopg2.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _query(db: ScratchDatabase, statement: str, *params):
    import psycopg2

    conn = psycopg2.connect(**{**PG_ADMIN, "dbname": db.name})
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def _wait(what: str, check, timeout: float, procs: ProcessGroups, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.assert_running()
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{procs.all_logs()}")


def _airflow_env(work: Path, db: ScratchDatabase, landing: Path, warehouse: Path, api_port: int) -> dict:
    # Nothing from the caller's Airflow/ETL settings may leak in.
    env = {k: v for k, v in env_with_project().items() if not k.startswith(("AIRFLOW", "ETL_"))}
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    return {
        **env,
        "AIRFLOW_HOME": str(work / "airflow-home"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.url(),
        # LocalExecutor's task runners report over the execution API of the API server,
        # with JWTs the scheduler signs: both must share the secret.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",  # 2-core machine
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # Parse each DAG file once. Every re-parse recomputes the DAG's next scheduled run
        # from the latest run (backfill runs count), and the scheduler would then add
        # scheduled runs that compete for the writer pool (see _block_scheduled_runs).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "86400",
        "AIRFLOW_VAR_ETL_LANDING_URI": str(landing),
        "AIRFLOW_VAR_ETL_WAREHOUSE_URI": str(warehouse),
    }


def _block_scheduled_runs(db: ScratchDatabase) -> None:
    """Keep the unpaused DAG from getting scheduled (catch-up) runs: only the backfill's runs may run.

    A backfill's runs are only started for unpaused DAGs (DagRun.get_queued_dag_runs_to_set_running
    filters on DagModel.is_paused), and Airflow 3.3 has no flag to run them on a paused DAG. Moving
    the DAG's next scheduled creation far into the future is what a quiet production DAG whose
    next interval has not ended looks like to the scheduler.
    """
    _query(db, "UPDATE dag SET next_dagrun_create_after = '2999-01-01' WHERE dag_id = %s", DAG_ID)


def scheduler_backfill(landing: Path, count: int, cli_all_per_month: float) -> None:
    problem = _pg_unreachable()
    if problem:
        print(
            f"\nscheduler backfill: skipped, PostgreSQL at {PG_ADMIN['host']}:{PG_ADMIN['port']} unreachable "
            f"({problem})"
        )
        return
    months = _months(count)
    work = Path(tempfile.mkdtemp(prefix="bench-sched-"))
    try:
        # Baseline: the CLI, one process per month, fresh warehouse.
        cli_env = env_with_project()
        cli_wh = work / "wh-cli-per-month"
        cli = sum(
            timed(
                [
                    PYTHON,
                    "-m",
                    "etl",
                    "run",
                    "ehealth-adoption",
                    "--period",
                    month,
                    "--landing",
                    str(landing),
                    "--warehouse",
                    str(cli_wh),
                ],
                cli_env,
            )
            for month in months
        )
        sched, setup, runs = _run_scheduler_backfill(work, landing, months)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ["CLI, one process per month (--period)", count, cli, cli / count, 1.0],
        ["Airflow scheduler backfill (LocalExecutor, PostgreSQL)", count, sched, sched / count, sched / cli],
    ]
    print(f"\nReal scheduler backfill of {months[0]}..{months[-1]} ({machine()})")
    print(table(["path", "months", "seconds", "s/month", "x CLI"], rows))
    print(
        f"vs the CLI all-months run scaled per month ({cli_all_per_month:.2f} s/month): "
        f"x{sched / count / cli_all_per_month:.1f}"
    )
    print(f"set-up not timed: db migrate + pool + components up + DAG parsed = {setup:.0f} s; runs: {runs}")


def _run_scheduler_backfill(work: Path, landing: Path, months: list[str]) -> tuple[float, float, str]:
    """(seconds from `backfill create` to the last run's end, set-up seconds, run summary)."""
    set_up_started = time.monotonic()
    warehouse = work / "wh-scheduler"
    api_port = free_port()
    with ScratchDatabase(PG_ADMIN, prefix="etl_bench") as db:
        env = _airflow_env(work, db, landing, warehouse, api_port)
        procs = ProcessGroups(work / "process-logs", marker=("ETL_BENCH_RUN", work.name))
        env = dict(env, ETL_BENCH_RUN=work.name)  # the CLI commands below are ours too
        airflow = Path(PYTHON).parent / "airflow"

        def cli(*args: str) -> str:
            out = subprocess.run([str(airflow), *args], env=env, cwd=work, capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
            return out.stdout

        try:
            cli("db", "migrate")
            cli("pools", "set", "etl_warehouse_writer", "1", "bench: one writer per warehouse")
            for name in ("api-server", "scheduler", "dag-processor"):
                procs.start(name, [str(airflow), name], env, cwd=work)
            import httpx

            def api_healthy() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait("the API server", api_healthy, STARTUP_TIMEOUT, procs)
            _wait(
                f"{DAG_ID} to be parsed",
                lambda: _query(
                    db,
                    "SELECT 1 FROM serialized_dag s JOIN dag d USING (dag_id) WHERE dag_id = %s "
                    "AND d.next_dagrun_create_after IS NOT NULL",
                    DAG_ID,
                ),
                STARTUP_TIMEOUT,
                procs,
            )
            _block_scheduled_runs(db)
            cli("dags", "unpause", DAG_ID)
            setup = time.monotonic() - set_up_started

            started = time.time()
            # --max-active-runs 1: the DAG's own max_active_runs=1 (months in order) does not
            # bind backfills, whose default is 10 concurrent runs.
            cli(
                "backfill",
                "create",
                "--dag-id",
                DAG_ID,
                "--from-date",
                f"{months[0]}-01",
                "--to-date",
                f"{months[-1]}-01",
                "--max-active-runs",
                "1",
            )
            timeout = RUN_TIMEOUT_PER_MONTH * len(months)

            def all_done():
                states = dict(
                    _query(
                        db,
                        "SELECT state, count(*) FROM dag_run WHERE dag_id = %s "
                        "AND run_type = 'backfill' GROUP BY state",
                        DAG_ID,
                    )
                )
                if states.get("failed"):
                    raise RuntimeError(f"backfill run failed: {states}\n{_task_logs(work)}\n{procs.all_logs()}")
                return states.get("success", 0) == len(months)

            _wait(f"{len(months)} backfill runs to succeed", all_done, timeout, procs, interval=1.0)
            ((last_end,),) = _query(
                db,
                "SELECT extract(epoch FROM max(end_date)) FROM dag_run WHERE dag_id = %s AND run_type = 'backfill'",
                DAG_ID,
            )
            elapsed = float(last_end) - started
            by_type = _query(
                db,
                "SELECT run_type, state, count(*) FROM dag_run WHERE dag_id = %s "
                "GROUP BY run_type, state ORDER BY 1, 2",
                DAG_ID,
            )
            summary = ", ".join(f"{n} {t} {s}" for t, s, n in by_type)
            tries = _query(
                db,
                "SELECT task_id, max(try_number) FROM task_instance WHERE dag_id = %s GROUP BY task_id ORDER BY 1",
                DAG_ID,
            )
            summary += "; max try per task: " + ", ".join(f"{t}={n}" for t, n in tries)
            if any(t != "backfill" for t, _, _ in by_type):
                summary += " (WARNING: non-backfill runs ran too, timing is polluted)"
            loaded = _loaded_months(warehouse)
            if loaded != set(months):
                raise RuntimeError(f"warehouse holds months {sorted(loaded)}, expected {months}")
            return elapsed, setup, summary
        finally:
            procs.stop()
            stray = procs.stray_processes()
            if stray:
                print(f"WARNING: processes left running: {[(p.pid, p.name()) for p in stray]}")


def _loaded_months(warehouse: Path) -> set[str]:
    """Months present in the published ehealth_adoption table (proves the runs did the work)."""
    sys.path.insert(0, str(ROOT))
    from etl import publish

    table_ = publish.read_table(str(warehouse), "ehealth_adoption")
    column = next(c for c in ("month", "period") if c in table_.column_names)
    return {str(v)[:7] for v in table_.column(column).to_pylist()}


def _task_logs(work: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace")[-2000:] for p in sorted((work / "airflow-home" / "logs").rglob("*.log"))[-4:]
    )


if __name__ == "__main__":
    main()
