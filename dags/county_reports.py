"""
### County reports: the regions' annual follow-up reports

Loads new submissions from `<landing>/county_reports/` (the Excel template
`.xlsx` or the web form's `.json`, docs/input-formats.md §1), validates them with the
suites in `expectations/` and publishes `county_report`,
`county_initiative` and `county_ehealth_service`.

* The file that arrived last for a region and year is the delivery (a
  correction replaces the report in full; re-sending an earlier version
  undoes it), whatever its modification time.
* A report refused whole (unknown region, bad year, spend over the grant,
  unknown JSON key, corrupt file…) or one that would remove published rows
  (a JSON list left out, rows quarantined) is blocked: the published
  version stays, the other regions still load, and the task fails naming it.
* The contact person is dropped at parse time; e-mail addresses and
  personnummer in free text are masked.
* Warehouse / landing: Variables `etl_warehouse_uri` / `etl_landing_uri`
  (a run conf cannot change them: the trigger form has no options).
* A refused or blocked report fails the task at once (no retries: the same
  file would fail again), its log ending in the one line that says why and
  a link to the run's data-quality page; storage that cannot be reached is
  retried.
* A file still being written (modified less than `ETL_LANDING_SETTLE_SECONDS`
  ago) is not judged yet: the task waits for it as *up for reschedule*
  (holding no worker slot), then judges it; still being written after an
  hour, the task fails naming it and the next run judges it.
* Runs daily; a day without new files only writes a "nothing new" log row.
"""

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

from etl.orchestration import asset_uri, default_args, run_task, settings_from_airflow, wait_for_arriving

COUNTY_REPORT = Asset(asset_uri("county_report"))
COUNTY_INITIATIVE = Asset(asset_uri("county_initiative"))
COUNTY_EHEALTH_SERVICE = Asset(asset_uri("county_ehealth_service"))


@dag(
    dag_id="county_reports",
    schedule="@daily",
    start_date=pendulum.datetime(2016, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["county", "reports", "landing"],
    doc_md=__doc__,
    params={},  # no run options: a run loads whatever has landed
)
def county_reports():
    @task(outlets=[COUNTY_REPORT, COUNTY_INITIATIVE, COUNTY_EHEALTH_SERVICE])
    def load_new_reports() -> dict:
        """Parse → validate → publish the new submissions; nothing new = a quick no-op."""
        from etl.pipelines import county_reports as pipeline

        def run() -> dict:
            settings = settings_from_airflow(dict(get_current_context()["dag_run"].conf or {}))
            report = pipeline.run(settings)
            for line in report.lines():
                print(line)
            wait_for_arriving(report)  # files still being written: judged once settled, not by tomorrow's run
            return report.to_dict()

        return run_task(run)

    load_new_reports()


county_reports()
