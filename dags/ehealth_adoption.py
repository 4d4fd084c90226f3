"""
### E-health adoption: web booking and the patient journal online, per region and month

Loads the national e-service operator's monthly exports from
`<landing>/ehealth/` (input contract: docs/input-formats.md §2 and §2b):

* `journalen_YYYY-MM` and `webbtidbok_YYYY-MM` (`.csv`, `.csv.gz`, `.txt`, `.xlsx`, `.xls` or `.ods`) →
  `ehealth_adoption` (21 regions, long format) and `ehealth_adoption_national`
  (the "Riket" row, used to reconcile the regions);
* `webbtidbok_enheter_YYYY-MM.csv` (optional, large) → `ehealth_unit_daily`.

**Each run is for one month** (its data interval; a manual run takes the Param
`period` = `YYYY-MM` or `all`, else the last complete month), and also loads
every earlier month with a file not yet loaded (*Late and corrected files*,
below). `load_month`
loads whatever has landed — it never waits for a file that has not landed,
so a late delivery never holds up later months or manual runs: a month
without files is simply "nothing new" (only a file already landing, still
being written, is waited for: below). A critical rule (a region missing,
regions not summing to the national total within 0.5 %) blocks that file
or month, publishes nothing of it and fails the task at once (no retries:
the same file would fail again), its log ending in the one line that says
why and a link to the run's data-quality page. An export of the run's
months still being written (modified less than
`ETL_LANDING_SETTLE_SECONDS` ago) is waited for, the task *up for
reschedule* (no worker slot held), then judged; still being written after
an hour, the task fails naming it. `report_overdue_deliveries` then lists
the monthly exports due by now (14 days after their month) that have
neither landed nor been loaded,
and notifies them through the Connection `etl_notify`; an overdue file never
fails the run (landing that cannot be listed does, in one line).

**Late and corrected files**: `load_month` also processes every earlier
month that has a file not yet loaded (SHA-256 against the load log), so a
file that lands after its run — or a republished correction, which replaces
that month and service — is picked up by the next run. Unit-level files
are not waited for; they are picked up the same way.

**No catchup**: unpausing makes one run, for the latest month, and that run
loads every earlier month with a pending file (above) — ten years of landed
exports in one run. (A run per month would pay task start-up some 130 times
and hold the writer pool for all of them.)

**Backfill**, to run months one run each (e.g. to see each month's outcome in
the grid), is one command: `airflow backfill create --dag-id ehealth_adoption
--from-date 2016-01-01 --to-date 2025-12-31 --max-active-runs 1` (a backfill
has its own limit, 10 by default; `max_active_runs=1` keeps months in order).
Faster for a whole decade: one run with conf `{"period": "all"}`.

Warehouse / landing: Variables `etl_warehouse_uri` / `etl_landing_uri`.
"""

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Asset, Param, dag, get_current_context, task

from etl.orchestration import (
    asset_uri,
    default_args,
    month_of_run,
    run_task,
    settings_from_airflow,
    wait_for_arriving,
)

EHEALTH_ADOPTION = Asset(asset_uri("ehealth_adoption"))
EHEALTH_ADOPTION_NATIONAL = Asset(asset_uri("ehealth_adoption_national"))
EHEALTH_UNIT_DAILY = Asset(asset_uri("ehealth_unit_daily"))

# The trigger form: what a run accepts (validated by Airflow before the run starts).
PARAMS = {
    "period": Param(
        None,
        type=["null", "string"],
        pattern=r"^(\d{4}-(0[1-9]|1[0-2])|all)$",
        title="Month",
        description="YYYY-MM to load that month, or all for every month with a pending delivery "
        "(a whole backfill in one run). Empty: the run's own month.",
    ),
}


def _last_complete_month() -> str:
    today = pendulum.now("UTC")
    return today.subtract(months=1).format("YYYY-MM")


def _run_month(context) -> str:
    """YYYY-MM (or "all") this run handles; manual runs in Airflow 3 have no logical date."""
    dag_run = context["dag_run"]
    return month_of_run(
        context.get("data_interval_start"),
        context.get("logical_date"),
        getattr(dag_run, "run_after", None),
        dict(dag_run.conf or {}),
    )


@dag(
    dag_id="ehealth_adoption",
    schedule="@monthly",
    start_date=pendulum.datetime(2016, 1, 1, tz="UTC"),
    catchup=False,  # unpausing runs the latest month only; it loads every pending month (docs above)
    max_active_runs=1,
    default_args=default_args(),
    tags=["ehealth", "monthly", "landing"],
    doc_md=__doc__,
    params=PARAMS,
)
def ehealth_adoption():
    @task(
        outlets=[EHEALTH_ADOPTION, EHEALTH_ADOPTION_NATIONAL, EHEALTH_UNIT_DAILY],
        execution_timeout=pendulum.duration(hours=4),
    )
    def load_month() -> dict:
        """Parse → validate → publish the month, and any earlier month with late or corrected files."""
        from etl.pipelines import ehealth_adoption as pipeline

        month = _run_month(get_current_context())

        def run() -> dict:
            from etl.config import check_month_begun

            settings = settings_from_airflow(dict(get_current_context()["dag_run"].conf or {}), set(PARAMS))
            if month != "all":
                check_month_begun(month, "period")  # a month still to come: one line, no retries
            report = pipeline.run(settings, period=None if month == "all" else month, catch_up_late=True)
            for line in report.lines():
                print(line)
            wait_for_arriving(report)  # an export still being written: judged once settled, not next month
            return report.to_dict()

        return run_task(run)

    @task(trigger_rule="all_done")
    def report_overdue_deliveries() -> list[str]:
        """Monthly exports due by now that have not landed: logged and notified, never blocking a run."""
        from etl.notify import notify
        from etl.pipelines import ehealth_adoption as pipeline

        context = get_current_context()
        month = _run_month(context)
        settings = run_task(lambda: settings_from_airflow(dict(context["dag_run"].conf or {}), set(PARAMS)))
        through = max(month, _last_complete_month()) if month != "all" else _last_complete_month()
        # A late file never fails the run; landing that cannot be listed does, in one line (as load_month does).
        overdue = run_task(lambda: pipeline.overdue_deliveries(settings, through))
        if overdue:
            line = (
                f"{len(overdue)} monthly export(s) overdue (due {pipeline.OVERDUE_AFTER_DAYS} days after the "
                f"month): {', '.join(overdue[:24])}" + (" …" if len(overdue) > 24 else "")
            )
            print(line)
            notify("[etl] e-health exports overdue", line)
        else:
            print(f"no monthly export overdue through {through}")
        return overdue

    loaded = load_month()
    loaded >> report_overdue_deliveries()
    # A run's state follows its leaf tasks: report_overdue_deliveries runs whatever happened (all_done), so
    # without this leaf a blocked month's run would end green beside its failed load_month.
    loaded >> EmptyOperator(task_id="month_loaded")


ehealth_adoption()
