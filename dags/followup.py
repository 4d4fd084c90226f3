"""
### Follow-up marts and analyst access

Rebuilds the follow-up marts `followup_region_year` and
`followup_national_year` from the published source tables, validates them
with `expectations/followup_*.json` (any critical failure blocks the
publish) and publishes them; then rebuilds the analyst access in the
warehouse: `followup.duckdb` (one view per table), the Excel workbook
`exports/followup_<YYYYMMDD>.xlsx` / `followup_latest.xlsx` and the
self-contained report `exports/followup_report.html`.

* Scheduled on the source tables' Assets: runs whenever **any** of them was
  republished (no polling, no cron). Trigger it by hand to rebuild the access
  files, e.g. after moving the warehouse.
* Warehouse / landing: Variables `etl_warehouse_uri` / `etl_landing_uri`.
* Full rebuild each run; an unchanged mart is logged `unchanged`, not rewritten.
"""

import functools
import operator

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

from etl.marts import MART_TABLES, SOURCE_TABLES
from etl.orchestration import asset_uri, default_args, run_task, settings_from_airflow

UPSTREAM = [Asset(asset_uri(table)) for table in SOURCE_TABLES]
MARTS = [Asset(asset_uri(table)) for table in MART_TABLES]


@dag(
    dag_id="followup",
    # Asset | Asset | …: a run as soon as any one source table has a new version.
    schedule=functools.reduce(operator.or_, UPSTREAM),
    start_date=pendulum.datetime(2016, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["followup", "mart", "analysts"],
    doc_md=__doc__,
    params={},  # no run options: the marts are rebuilt from the current source versions
)
def followup():
    @task(outlets=MARTS)
    def build_marts() -> dict:
        """Read the source tables → compute → validate → publish both marts."""
        from etl.pipelines import followup as pipeline

        def run() -> dict:
            conf = dict(get_current_context()["dag_run"].conf or {})
            # The views follow in build_access whenever it rebuilds; built here too they would be built twice.
            report = pipeline.build_marts(settings_from_airflow(conf), access=pipeline.access_follows)
            for line in report.lines():
                print(line)
            return report.to_dict()

        return run_task(run)

    @task
    def build_access(marts: dict) -> dict:
        """followup.duckdb, the Excel workbook and the HTML report (from the published marts)."""
        from etl.pipelines import followup as pipeline

        conf = dict(get_current_context()["dag_run"].conf or {})
        paths = run_task(lambda: pipeline.refresh_access(settings_from_airflow(conf), marts["outcome"]))
        for kind, uri in paths.items():
            print(f"{kind}: {uri}")
        if not paths:
            print("marts unchanged and analyst access already built: nothing to do")
        return paths

    # TaskFlow passes the upstream task's XComArg, resolved to its dict when the task runs; Airflow's
    # decorator types the call with the function's own parameters.
    build_access(build_marts())  # type: ignore[arg-type]


followup()
