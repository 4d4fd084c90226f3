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
* a person's name and roles come from the directory only: changed anywhere
  but at their sign-in (the users API, FAB's user pages) they are refused,
  and a role is never renamed — else an admin could give himself the
  Steward role, or take a steward's name, and answer an approval request
  (a reviewer did both);
* the token endpoints (``POST /auth/token``, ``/auth/token/cli``) are
  rate-limited per client address like the login form (FAB limits only the
  form), with the same ``AUTH_RATE_LIMIT``.

Imported by the API server only (it needs the FAB provider).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.fab.auth_manager.models import Role, User
from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride

from etl import sign_in

TOKEN_PATHS = ("/token", "/token/cli")


# True while a sign-in writes what the directory says of the person (FAB creates the user or syncs its roles).
_SIGNING_IN: ContextVar[bool] = ContextVar("signing_in", default=False)

FROM_DIRECTORY = (
    "a person's name and roles come from the agency's directory: change them there (their next sign-in "
    "follows it), not in Airflow"
)


class DirectoryOnly(PermissionError):
    """A change to a person's name or roles, or a role's name, outside a sign-in."""


def _directory_changes(target: User | Role) -> list[str]:
    """The directory's fields of ``target`` changed and not yet written, outside a sign-in (else none)."""
    from sqlalchemy import inspect

    if _SIGNING_IN.get():
        return []
    state: Any = inspect(target)
    fields = ("username", "roles") if isinstance(target, User) else ("name",)
    return [a for a in fields if state.attrs[a].history.has_changes()]


def _refuse_outside_sign_in(mapper, connection, target) -> None:
    """Mapper hook (before a User or Role row is updated): names and roles change only at a sign-in."""
    changed = _directory_changes(target)
    if changed:
        raise DirectoryOnly(f"{FROM_DIRECTORY} (refused: {', '.join(changed)} of {type(target).__name__.lower()})")


def _guard_directory_fields() -> None:
    from sqlalchemy import event

    for model in (User, Role):
        if not event.contains(model, "before_update", _refuse_outside_sign_in):
            event.listen(model, "before_update", _refuse_outside_sign_in)


class DirectorySecurityManager(FabAirflowSecurityManagerOverride):
    """FAB's security manager with each typed sign-in name made canonical before LDAP and the user table see it,
    and a person's name and roles written only by their sign-in."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _guard_directory_fields()

    def auth_user_ldap(self, username, password, rotate_session_id=True) -> User | None:
        token = _SIGNING_IN.set(True)
        try:
            return super().auth_user_ldap(sign_in.canonical_username(username), password, rotate_session_id)
        finally:
            _SIGNING_IN.reset(token)

    def update_user(self, user: User) -> bool:
        """FAB's update, refused with a 403 that says why when it changes a name or roles outside a sign-in
        (the users API would otherwise answer a bare 500)."""
        changed = _directory_changes(user)
        if changed:
            from fastapi import HTTPException

            self.session.rollback()
            raise HTTPException(status_code=403, detail=f"{FROM_DIRECTORY} (refused: {', '.join(changed)})")
        return super().update_user(user)

    def update_role(self, role_id, name: str) -> Role | None:
        """Never a rename: the directory's groups map to roles by name (FAB would answer 200 and keep it)."""
        role = self.session.get(self.role_model, role_id)
        if role is not None and role.name != name:
            from fastapi import HTTPException

            raise HTTPException(
                status_code=403,
                detail=f"the roles the directory's groups map to keep their names (refused: {role.name} → {name})",
            )
        return super().update_role(role_id, name)


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
