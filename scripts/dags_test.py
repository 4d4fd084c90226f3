"""`airflow dags test`, with each task's log written where the Airflow UI reads it.

Usage (what `make demo` runs for every DAG): ``python scripts/dags_test.py DAG_ID [-c JSON] [other
`airflow dags test` options]``.

Why: ``airflow dags test`` makes a real DAG run in the metadata database but,
in Airflow 3, runs each task inside the CLI process without Airflow's task
supervisor (``InProcessTestSupervisor``): the task's output goes to the
console only and no log file is written. Opening such a run's task in the UI
(``make airflow`` on the same ``AIRFLOW_HOME``) then shows "Log file not
found" — the API server reads ``[logging] base_log_folder`` /
``log_filename_template``, where only a supervisor writes.

What changes: nothing but how each task is run. It runs under Airflow's own
task supervisor — ``supervise_task``, the function every executor hands a
task to — in a child process, as under the scheduler. The supervisor talks to
the same in-process Execution API that ``dags test`` uses (no API server is
needed), and writes the task log with the same code, in the same JSON-lines
format, to the same file as for a scheduled run; it also echoes the task's
output to this process's stdout, so the console shows what ``dags test``
shows. The DAG run, dependency handling, XComs, retries and exit code are
``airflow dags test``'s own.

Tied to Airflow internals (``dag.test()`` looks up
``airflow.sdk.execution_time.supervisor.run_task_in_process`` each time it
runs a task; pinned Airflow 3.3.2): ``tests/test_demo_logs.py`` runs it and
reads the log back through the reader the UI uses, so an upgrade that breaks
it fails a test. Deferrable tasks are not supported (no triggerer here): such
a task fails with a message instead of hanging.
"""

from __future__ import annotations

import sys


def run_task_supervised(ti, task, client=None):
    """Stands in for ``supervisor.run_task_in_process``: run the task as an executor would, log file included."""
    from types import SimpleNamespace

    from airflow.executors.workloads import ExecuteTask
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, TaskRunResult, supervise_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        # The row dag.test() has just set to QUEUED; the workload is what an executor would be given
        # (log path rendered from the run's log template, bundle, relative DAG file).
        row = session.get(TaskInstance, ti.id)
        workload = ExecuteTask.make(row)
    supervise_task(
        ti=workload.ti,
        bundle_info=workload.bundle_info,
        dag_rel_path=workload.dag_rel_path,
        token=workload.token,
        client=client or InProcessTestSupervisor._api_client(task.dag),
        log_path=workload.log_path,
        subprocess_logs_to_stdout=True,
    )
    with create_session() as session:
        state = session.get(TaskInstance, ti.id).state
    if state == TaskInstanceState.DEFERRED:
        raise RuntimeError(
            f"{ti.dag_id}.{ti.task_id} deferred: scripts/dags_test.py runs no triggerer; "
            "use `airflow dags test` for deferrable tasks"
        )
    return TaskRunResult(ti=SimpleNamespace(state=state, task=task), state=state, msg=None, error=None)


def main(argv: list[str]) -> int:
    import os

    # The supervisor notices its task process has exited at its next wake-up, up to this many seconds
    # after the task finished (5 by default): under a scheduler that is after the task's state is
    # recorded, here it would hold up the next task. 1 s: a heartbeat a second, to an in-process API.
    os.environ.setdefault("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "1")

    from airflow.sdk.execution_time import supervisor

    if not hasattr(supervisor, "run_task_in_process"):  # an Airflow whose dag.test() no longer uses it
        raise SystemExit(
            "scripts/dags_test.py: this Airflow has no supervisor.run_task_in_process; see the module docstring"
        )
    supervisor.run_task_in_process = run_task_supervised

    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", "dags", "test", *argv]
    result = airflow_main()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
