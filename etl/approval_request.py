"""The approval's Human-in-the-loop request: asked once per run, answered by a data steward, recorded as answered.

``approve_blocked_delivery``'s ``decide`` task is a :class:`StewardRequest`.
Three rules make "approvals take two people" hold in Airflow, not only in
the form (issue 24; each was broken by a reviewer):

* **A run asks once.** A cleared or retried ``decide`` (or a cleared run)
  would ask again under the same assignment — *not the person who
  triggered it* — so whoever cleared it could answer a request someone
  else made, or overturn a rejection alone. A run that asks again fails
  instead, saying to trigger a new run (whose trigger is then its asker).
* **The answer is Airflow's record of it**, as the API server resumes the
  task with it (not a value passed between tasks), and the decision is
  written to the load log there, under the run's own batch id
  (:func:`batch_id`). ``record_decision`` publishes only what the load log
  holds for its run: an XCom written by hand decides nothing.
* Who may answer is :mod:`etl.sign_in`'s rule, assigned when the request is made.

Needs Airflow (the DAG imports it); the rest of ``etl`` does not.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator

from etl import sign_in

APPROVE, REJECT = "Approve", "Reject"


def batch_id(dag_id: str, run_id: str) -> str:
    """The load-log batch id of the decision an approval run records: the run, named."""
    return f"{dag_id}:{run_id}"


class StewardRequest(HITLOperator):
    """A :class:`HITLOperator` that asks once per run and records the stored answer (module doc).

    ``record`` is called with (context, the answer as a dict with
    ``chosen_options``, ``params_input``, ``responded_by_user``) when the
    answer arrives; it writes the decision and returns what the task returns.
    """

    def __init__(self, *, record, **kwargs) -> None:
        kwargs.setdefault("retries", 0)  # a retry would ask again: see "a run asks once"
        super().__init__(**kwargs)
        self.record = record

    def execute(self, context: Any):
        from etl.orchestration import TaskRefused

        ti, run = context["ti"], context["dag_run"]
        if ti.try_number > 1 or (run.clear_number or 0) > 0:
            raise TaskRefused(
                f"{self.dag_id}: this run already asked (it was cleared or retried); a run asks once, or whoever "
                "cleared it could answer a request someone else made — trigger the DAG again to ask anew"
            )
        sign_in.assign_approvers(context)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # The event is Airflow's own record of the response (the API server resumes the task with it);
        # nothing another task or a person with XCom access can write.
        result = super().execute_complete(context, event)  # Airflow's checks of the options and the form
        user = result.get("responded_by_user") or {}
        answer = {
            "chosen_options": list(result.get("chosen_options") or []),
            "params_input": dict(result.get("params_input") or {}),
            "responded_by_user": {"id": user.get("id"), "name": user.get("name")},
        }
        return self.record(context, answer)
