"""The production auth manager: Airflow's FAB auth manager with the agency's sign-in rules.

Configured with ``AIRFLOW__CORE__AUTH_MANAGER=etl.auth_manager.AgencyFabAuthManager``
and ``deploy/webserver_config.py`` (LDAP sign-in, groups mapped to roles;
docs/deployment.md). Everything is FAB's own except three rules:

* who may respond to a Human-in-the-loop request: for the approval requests,
  whose assignees are the rule (:func:`etl.sign_in.approval_assignees`), "a
  data steward who did not ask for it";
* one Airflow user per directory account (:class:`DirectorySecurityManager`):
  the directory matches ``uid`` ignoring case and surrounding spaces, so
  ``"tove "`` must not become a second user beside ``tove`` — who could then
  answer tove's own request;
* the token endpoints (``POST /auth/token``, ``/auth/token/cli``) are
  rate-limited per client address like the login form (FAB limits only the
  form), with the same ``AUTH_RATE_LIMIT``.

Imported by the API server only (it needs the FAB provider).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.fab.auth_manager.models import User
from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride

from etl import sign_in

TOKEN_PATHS = ("/token", "/token/cli")


class DirectorySecurityManager(FabAirflowSecurityManagerOverride):
    """FAB's security manager with each typed sign-in name made canonical before LDAP and the user table see it."""

    def auth_user_ldap(self, username, password, rotate_session_id=True) -> User | None:
        return super().auth_user_ldap(sign_in.canonical_username(username), password, rotate_session_id)


# The name must contain "FabAuthManager": Airflow 3.3 syncs each DAG's access_control to FAB permissions only
# when `[core] auth_manager` does (airflow/dag_processing/collection.py).
class AgencyFabAuthManager(FabAuthManager):
    """FabAuthManager whose approval requests are answered by data stewards only, never by who asked."""

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: User) -> bool:
        if not sign_in.is_rule(assigned_users):
            return super().is_authorized_hitl_task(assigned_users=assigned_users, user=user)
        return sign_in.may_respond(assigned_users, user.username, (role.name for role in user.roles))

    def get_fastapi_app(self) -> Any:
        from fastapi.responses import JSONResponse
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        app = super().get_fastapi_app()
        if app is None or self.flask_app is None:
            return app
        config = self.flask_app.config
        if not config.get("AUTH_RATE_LIMITED", True):
            return app
        limit = parse(config.get("AUTH_RATE_LIMIT", "5 per 40 second"))
        limiter = MovingWindowRateLimiter(MemoryStorage())  # per API server process, as FAB's own limit

        @app.middleware("http")
        async def limit_token_requests(request, call_next):
            if request.method == "POST" and request.url.path.rstrip("/").endswith(TOKEN_PATHS):
                client = request.client.host if request.client else "unknown"
                if not limiter.hit(limit, "auth-token", client):
                    return JSONResponse({"detail": "Too many sign-in attempts: wait and try again"}, status_code=429)
            return await call_next(request)

        return app
