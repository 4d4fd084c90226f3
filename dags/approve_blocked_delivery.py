"""
### Approve (or reject) publishing a blocked delivery

A delivery is **blocked** when publishing it would drop something the checks
cannot tell is meant: an e-health export lacking a region's line, a county
report that leaves its initiatives list out, quarantined lines that would
remove published rows. The failed run names the file and, when a person can
settle it, ends with *"a person may approve publishing it as it is"*.

1. Trigger this DAG with **Blocked file** = the file's name as the failure
   names it (`webbtidbok_2026-01.csv`, `Region Gotland 2025.xlsx`).
2. `find_blocked_delivery` looks it up in the load log and fails at once,
   naming what is blocked now, if it is not blocked or cannot be approved
   (a file refused whole must be replaced: nothing of it could publish).
3. `decide` waits for a person (**Required actions** in the UI, or the task's
   page): *Approve* or *Reject*, with the reason, which is required. Under
   the agency's sign-in only a **data steward** may answer, and not the
   person who triggered this run. The answer Airflow stored is written to
   the load log at once — who and why (`outcome` `approved` / `rejected`).
   A run asks once: cleared or retried, `decide` fails; trigger the DAG
   again instead.
4. `record_decision` publishes an approved file at once (an e-health
   export: its month; a county report: the county pipeline), with the
   quarantine and removals the block named; the publish's load-log row and
   the follow-up report's footnotes say who approved it and why. It acts
   only on the decision this run recorded in the load log. A rejection
   keeps the block: the delivery's runs keep failing until a new file
   replaces it.

The decision holds for that file content only: a new file for the same
delivery is judged afresh. The same from a shell:
`python -m etl approve FILE --reason "…"` (`--reject` to reject, no FILE to
list what is blocked).
"""

from collections.abc import Collection

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

from etl.approval_request import APPROVE, REJECT, StewardRequest, batch_id
from etl.orchestration import asset_uri, default_args, run_task, settings_from_airflow
from etl.sign_in import STEWARD_ROLE

PARAMS = {
    "delivery": Param(
        "",
        type="string",
        minLength=5,
        maxLength=255,
        title="Blocked file",
        description="The blocked file's name as the failed run names it, e.g. webbtidbok_2026-01.csv.",
    ),
}
# Under the agency's sign-in (FAB roles): data stewards may edit this DAG, which answering its requests needs.
STEWARD_ACCESS: dict[str, dict[str, Collection[str]]] = {STEWARD_ROLE: {"DAGs": ("can_read", "can_edit")}}
FOUND = "ti.xcom_pull(task_ids='find_blocked_delivery')"
# An approval publishes through the e-health or the county pipeline: the follow-up marts are rebuilt after it.
PUBLISHES = [
    Asset(asset_uri(table))
    for table in (
        "ehealth_adoption",
        "ehealth_adoption_national",
        "ehealth_unit_daily",
        "county_report",
        "county_initiative",
        "county_ehealth_service",
    )
]


@dag(
    dag_id="approve_blocked_delivery",
    schedule=None,  # only ever triggered by a person
    start_date=pendulum.datetime(2016, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["approval", "deliveries"],
    doc_md=__doc__,
    params=PARAMS,
    access_control=STEWARD_ACCESS,
)
def approve_blocked_delivery():
    @task(pool="default_pool")
    # Size: a TaskFlow DAG holds its tasks' definitions; each task is short and reads on its own.
    def find_blocked_delivery() -> dict:
        """The blocked delivery named by the Param, or a one-line failure naming what is blocked now."""
        from etl import approvals

        def find() -> dict:
            context = get_current_context()
            settings = settings_from_airflow(dict(context["dag_run"].conf or {}), set(PARAMS))
            blocked = approvals.find(settings.warehouse_uri, str(context["params"]["delivery"]))
            print(
                f"{blocked.name} ({blocked.pipeline}) blocked {blocked.blocked_at:%Y-%m-%d %H:%M} UTC: "
                f"{blocked.message}"
            )
            if blocked.decision is not None:
                print(f"earlier decision on this content: {blocked.decision.note()}")
            return {
                "name": blocked.name,
                "pipeline": blocked.pipeline,
                "sha256": blocked.sha256,
                "message": blocked.message,
            }

        return run_task(find)

    def record_answer(context, answer: dict) -> dict:
        """The stored answer to the load log, under this run's batch id (etl.approval_request)."""
        from etl import approvals
        from etl.errors import BadInput
        from etl.pipelines import approved

        def record() -> dict:
            settings = settings_from_airflow(dict(context["dag_run"].conf or {}), set(PARAMS))
            found = context["ti"].xcom_pull(task_ids="find_blocked_delivery") or {}
            blocked = approvals.find(settings.warehouse_uri, str(context["params"]["delivery"]))
            if blocked.sha256 != found.get("sha256"):
                raise BadInput(
                    f"{blocked.name}: the file changed while the decision was pending; "
                    "trigger this DAG again to decide on the new content"
                )
            user = answer["responded_by_user"]
            who = user.get("name") or user.get("id") or "unknown user"
            decision = approved.record_decision(
                settings,
                blocked,
                answer["chosen_options"] == [APPROVE],
                who,
                answer["params_input"].get("reason", ""),
                batch_id(context["dag"].dag_id, context["dag_run"].run_id),
            )
            print(f"{blocked.name}: {decision.note()}")
            return {"decision": "approved" if decision.approved else "rejected", "by": decision.by}

        return run_task(record)

    decide = StewardRequest(
        task_id="decide",
        record=record_answer,
        subject="Publish {{ " + FOUND + "['name'] }} although it is blocked?",
        body=(
            # The file name and the block line carry text a sender wrote: shown as an indented code block (one
            # line each), never as Markdown that could turn into a link or an image in the approval form.
            # The block line names the file first ("<file>: blocked, …"): shown once.
            "A delivery of {{ " + FOUND + "['pipeline'] }} was blocked:\n\n"
            "    {{ " + FOUND + "['message'] | replace('\\n', ' ') }}\n\n"
            "*Approve* publishes it as it is: its quarantined lines stay in quarantine and the rows the block "
            "names are removed from the published tables. *Reject* keeps the block until a new file "
            "replaces it. Either way, who decided and why goes to the load log."
        ),
        options=[APPROVE, REJECT],
        # A default is needed: Airflow validates a task's Params when the task starts, before anyone answers.
        # The form still requires the field; approvals.record enforces the 10-character minimum.
        params={
            "reason": Param(
                "",
                type="string",
                maxLength=1000,
                title="Why",
                description="Why this delivery may (or may not) be published as it is; kept in "
                "the load log and, on approval, in the report's footnotes.",
            )
        },
        pool="default_pool",  # waiting for a person must never hold the warehouse writer's slot
    )

    # Retried only for what can heal (storage unreachable); a publish already done is not done again.
    @task(outlets=PUBLISHES)
    def record_decision(found: dict) -> dict:
        """On the approval this run recorded (the load log, not a value passed between tasks), publish the file."""
        from etl import approvals
        from etl.errors import BadInput
        from etl.pipelines import approved

        def publish_it() -> dict:
            context = get_current_context()
            settings = settings_from_airflow(dict(context["dag_run"].conf or {}), set(PARAMS))
            run = context["dag_run"]
            # This run's answer only: on the file it asked about, recorded since it started (a run id reused
            # after its run was deleted must not find the old run's decision).
            decision = approvals.decision_of(
                settings.warehouse_uri,
                batch_id(context["dag"].dag_id, run.run_id),
                sha256=found["sha256"],
                since=run.start_date,
            )
            if decision is None:
                # `decide` marked success by hand: nobody answered, so there is nothing to record or publish.
                raise BadInput(
                    f"{found['name']}: this run's approval request was never answered (decide was marked done "
                    "by hand); trigger this DAG again for a data steward to decide"
                )
            print(f"{found['name']}: {decision.note()}")
            if not decision.approved:
                print(f"{found['name']}: stays blocked until a new file replaces it")
                return {"decision": "rejected", "by": decision.by}
            if approvals.published_since(settings.warehouse_uri, decision):
                print(f"{found['name']}: already published by an earlier try of this task")
                return {"decision": "approved", "by": decision.by}
            report = approved.publish_decision(
                settings, approvals.find(settings.warehouse_uri, found["name"]), decision
            )
            assert report is not None  # an approval always has its run's report
            for line in report.lines():
                print(line)
            return {"decision": "approved", "by": decision.by, "run": report.to_dict()}

        return run_task(publish_it)

    found = find_blocked_delivery()
    # TaskFlow passes the XComArg, resolved to the found delivery's dict when the task runs (see dags/followup.py).
    found >> decide >> record_decision(found)  # type: ignore[arg-type]


approve_blocked_delivery()
