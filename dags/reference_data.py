"""
### Reference data: regions, SCB population, Kolada key figures

Builds `dim_region` from the project's region list, fetches population per
region and year from SCB (PxWeb v2, table TAB638) and the configured SKR key
figures from Kolada (v3), validates them with the suites in `expectations/`
and publishes them to the warehouse.

* Base URLs: Connections `scb_default` / `kolada_default` (default: the live APIs).
* KPI ids: Variable `etl_kolada_kpis` (comma-separated; empty = none).
* Warehouse / landing: Variables `etl_warehouse_uri` / `etl_landing_uri`.
* Run conf: `year` (population and key figures 2016..year; default last year),
  `offline_snapshot` (read the recorded answers under `<landing>/api_snapshot/`).
* Offline by default: Variable `etl_reference_offline_snapshot` = `true` makes
  the runs that do not choose — the scheduled ones — read the recorded answers
  too. `make airflow` sets it (its landing is the sample, recordings included,
  and a laptop may have no network); unset or `false`, as in production: the
  live APIs. A triggered run's `offline_snapshot` always decides for that run.
* Runs yearly and on demand. Each HTTP call retries itself (backoff, Retry-After);
  the task retries with exponential backoff on top, and a failed fetch publishes
  nothing, so a retry starts clean.
"""

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

from etl.orchestration import asset_uri, default_args, run_task, settings_from_airflow

# Admin setting: what a run without its own offline_snapshot choice (a scheduled run) reads.
VAR_OFFLINE_SNAPSHOT = "etl_reference_offline_snapshot"

DIM_REGION = Asset(asset_uri("dim_region"))
POPULATION = Asset(asset_uri("population"))
KOLADA_KPI = Asset(asset_uri("kolada_kpi"))


# The trigger form: what a run accepts (validated by Airflow before the run starts).
PARAMS = {
    "offline_snapshot": Param(
        False,
        type="boolean",
        title="Offline snapshot",
        description="Read the bundled API snapshot from <landing>/api_snapshot/ instead of "
        "calling SCB and Kolada (a closed network, or a demo).",
    ),
    "year": Param(
        None,
        type=["null", "integer"],
        minimum=2000,
        maximum=2100,
        title="Up to year",
        description="Load population for the years up to this one (empty: every year SCB has).",
    ),
}


@dag(
    dag_id="reference_data",
    schedule="@yearly",
    start_date=pendulum.datetime(2016, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["reference", "scb", "kolada"],
    doc_md=__doc__,
    params=PARAMS,
)
def reference_data():
    @task(outlets=[DIM_REGION, POPULATION, KOLADA_KPI])
    def fetch_validate_publish() -> dict:
        """Fetch → validate → publish; a failed fetch publishes nothing."""
        from etl.pipelines import reference

        def run() -> dict:
            conf = dict(get_current_context()["dag_run"].conf or {})
            settings = settings_from_airflow(conf, accepted=set(PARAMS))
            year = conf.get("year")
            if year:
                from etl.config import check_year_begun

                check_year_begun(int(year), "year")  # a year still to come: one line, no retries
            offline = conf.get("offline_snapshot")
            if offline is None:  # a scheduled run: the admin's setting, else the live APIs
                from airflow.sdk import Variable

                offline = str(Variable.get(VAR_OFFLINE_SNAPSHOT, default="false")).strip().lower() == "true"
            report = reference.run(settings, year=int(year) if year else None, offline_snapshot=bool(offline))
            for line in report.lines():
                print(line)
            return report.to_dict()

        return run_task(run)

    fetch_validate_publish()


reference_data()
