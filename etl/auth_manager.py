"""The production auth manager: Airflow's FAB auth manager with the approval rule of :mod:`etl.sign_in`.

Configured with ``AIRFLOW__CORE__AUTH_MANAGER=etl.auth_manager.AgencyFabAuthManager``
and ``deploy/webserver_config.py`` (LDAP sign-in, groups mapped to roles;
docs/deployment.md). Everything but one question is FAB's own: who may
respond to a Human-in-the-loop request. Airflow asks only for requests with
assignees; for the approval requests, whose assignees are the rule
(:func:`etl.sign_in.approval_assignees`), the answer is "a data steward who
did not ask for it". Imported by the API server only (it needs the FAB provider).
"""

from __future__ import annotations

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.fab.auth_manager.models import User

from etl import sign_in


# The name must contain "FabAuthManager": Airflow 3.3 syncs each DAG's access_control to FAB permissions only
# when `[core] auth_manager` does (airflow/dag_processing/collection.py).
class AgencyFabAuthManager(FabAuthManager):
    """FabAuthManager whose approval requests are answered by data stewards only, never by who asked."""

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: User) -> bool:
        if not sign_in.is_rule(assigned_users):
            return super().is_authorized_hitl_task(assigned_users=assigned_users, user=user)
        return sign_in.may_respond(assigned_users, user.username, (role.name for role in user.roles))
