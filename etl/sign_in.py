"""Who may answer an approval: the data stewards, never the person who asked for it.

The agency's roles (docs/deployment.md, "Sign-in and roles") come from its
directory through the FAB auth manager (deploy/webserver_config.py). One
rule is the project's own: a blocked delivery is published as it is only
when a *data steward* approves it, and not the person who triggered the
approval request — two people for every exception to the checks.

The rule travels with the request itself: ``approve_blocked_delivery``'s
``decide`` task assigns its Human-in-the-loop request to
:func:`approval_assignees` — pseudo-users Airflow stores and shows as the
request's assignees — and :class:`etl.auth_manager.AgencyFabAuthManager`
answers Airflow's "may this user respond?" with :func:`may_respond`.
Standard library only: the worker that runs the task imports this module.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

STEWARD_ROLE = "Steward"
ROLE_PREFIX = "role:"  # an assignee id naming a role: anyone who holds it
NOT_PREFIX = "not:"  # an assignee id naming a user who may not respond, whatever their roles
AUTH_MANAGER = "etl.auth_manager.AgencyFabAuthManager"


def canonical_username(typed: str | None) -> str:
    """The sign-in name as the directory matches it: one spelling for every way of typing it ("" for None).

    LDAP compares ``uid`` by its string preparation: compatibility forms folded
    (fullwidth ``ｓｖｅｎ``, the long s of ``ſven``), case ignored, surrounding
    spaces dropped and inner runs of spaces made one. So ``" Tove "``,
    ``TOVE`` and ``ｔｏｖｅ`` are one account, and Airflow must make them one
    user too, or a person could answer their own request under a look-alike
    name: Unicode NFKC, case folding, whitespace collapsed (then NFKC again,
    as folding can leave a composed form).
    """
    folded = unicodedata.normalize("NFKC", typed or "").casefold()
    return unicodedata.normalize("NFKC", " ".join(folded.split()))


def approval_assignees(triggered_by: str | None) -> list[dict[str, str]]:
    """The ``assigned_users`` of an approval request: any data steward, except ``triggered_by``.

    Returns HITL user dicts (``id``, ``name``); the names are what the UI
    shows as the request's assignees. ``triggered_by`` is the run's
    ``triggering_user_name`` (None for a run nobody triggered by hand).
    """
    assignees = [{"id": f"{ROLE_PREFIX}{STEWARD_ROLE}", "name": "any data steward"}]
    who = canonical_username(triggered_by)
    if who:
        assignees.append({"id": f"{NOT_PREFIX}{who}", "name": f"but not {who}, who asked"})
    return assignees


def is_rule(assigned_ids: Iterable[str]) -> bool:
    """Whether ``assigned_ids`` were written by :func:`approval_assignees` (not a list of real user ids)."""
    return any(i.startswith((ROLE_PREFIX, NOT_PREFIX)) for i in assigned_ids)


def may_respond(assigned_ids: Iterable[str], username: str, roles: Iterable[str]) -> bool:
    """Whether the signed-in ``username`` holding ``roles`` may answer a request assigned to ``assigned_ids``.

    True when the user holds one of the roles named by ``role:…`` and is not
    named by ``not:…``; a plain id (a real user's) admits that user, as
    Airflow's default does.
    """
    ids = set(assigned_ids)
    me = canonical_username(username)
    if any(i.startswith(NOT_PREFIX) and canonical_username(i[len(NOT_PREFIX) :]) == me for i in ids):
        return False
    held = set(roles)
    return any(i.startswith(ROLE_PREFIX) and i[len(ROLE_PREFIX) :] in held for i in ids) or username in ids


def assign_approvers(context) -> None:
    """``pre_execute`` of the approval's HITL task: assign it by :func:`approval_assignees`.

    Only under the agency's auth manager (``[core] auth_manager`` =
    :data:`AUTH_MANAGER`), which knows roles and enforces the rule; under
    Airflow's simple auth manager of ``make airflow`` (one laptop, one admin)
    the request stays open to anyone who may edit the DAG, as before.
    """
    from airflow.configuration import conf

    if conf.get("core", "auth_manager", fallback="") != AUTH_MANAGER:
        return
    context["task"].assigned_users = approval_assignees(context["dag_run"].triggering_user_name)
