"""
### Warehouse maintenance: compaction, checkpoints and vacuum

Every Delta table of the warehouse (tables, quarantines, the load log):
small files compacted, the commit log checkpointed, and files that no
version inside the retention window needs deleted (`etl/maintenance.py`).

* Retention: environment `ETL_RETENTION_DAYS` (default 3650 days): reports
  can be rebuilt with `python -m etl report --as-of DATE` for that long.
* The task log has one line per table: files before → after, files
  vacuumed, version before → after.
* Runs weekly, in the `etl_warehouse_writer` pool like every writer.
"""

import pendulum
from airflow.sdk import dag, get_current_context, task

from etl.orchestration import default_args, run_task, settings_from_airflow


@dag(
    dag_id="warehouse_maintenance",
    schedule="@weekly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["warehouse", "maintenance"],
    doc_md=__doc__,
    params={},
)
def warehouse_maintenance():
    @task
    def compact_checkpoint_vacuum() -> list[dict]:
        """Maintain every published table; returns each table's figures."""
        from etl import maintenance

        context = get_current_context()
        # A refused run conf key or store credentials fail at once (fail_fast); a store that cannot be
        # reached is retried.
        settings = run_task(lambda: settings_from_airflow(dict(context["dag_run"].conf or {})))
        results = run_task(lambda: maintenance.maintain(settings.warehouse_uri))
        for result in results:
            print(result.line())
        return maintenance.as_dicts(results)

    compact_checkpoint_vacuum()


warehouse_maintenance()
