"""The approval rule of etl.sign_in, the auth manager that applies it, and how compose and the image wire it.

The whole sign-in, with a real directory and Chromium, is tests/test_sign_in_roles.py; these are its
fast parts: who may answer an approval request for every kind of person, and the configuration files.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from integration_support import load_compose

from etl import sign_in

ROOT = Path(__file__).resolve().parent.parent


def test_the_request_is_assigned_to_the_stewards_but_not_to_who_asked():
    assert sign_in.approval_assignees("sven") == [
        {"id": "role:Steward", "name": "any data steward"},
        {"id": "not:sven", "name": "but not sven, who asked"},
    ]
    # A run nobody triggered by hand (none today): any steward.
    assert sign_in.approval_assignees(None) == [{"id": "role:Steward", "name": "any data steward"}]


@pytest.mark.parametrize(
    ("username", "roles", "may"),
    [
        ("sara", {"Viewer", "Steward"}, True),  # a steward who did not ask
        ("sven", {"User", "Viewer", "Steward"}, False),  # a steward, but the one who asked
        ("erik", {"User"}, False),  # an engineer
        ("ana", {"Viewer"}, False),  # an analyst
        ("adam", {"Admin"}, False),  # an admin is not a steward: the two-person rule holds for admins too
        ("olle", set(), False),
    ],
)
def test_who_may_answer(username, roles, may):
    ids = {a["id"] for a in sign_in.approval_assignees("sven")}
    assert sign_in.is_rule(ids)
    assert sign_in.may_respond(ids, username, roles) is may


# The look-alikes a reviewer signed in with: the directory folds them to sven (long s, fullwidth, NBSP).
@pytest.mark.parametrize(
    "typed",
    [
        "sven",
        "Sven",
        " sven",
        "SVEN  ",
        "\tsven",
        "\u017fven",
        "\uff53\uff56\uff45\uff4e",
        "\uff33ven",
        "sven\u00a0",
        "SvEn\n",
    ],
)
def test_the_one_who_asked_is_refused_however_the_name_is_typed(typed):
    ids = {a["id"] for a in sign_in.approval_assignees(" Sven")}
    assert ids == {"role:Steward", "not:sven"}
    assert sign_in.may_respond(ids, typed, {"Steward"}) is False
    assert sign_in.canonical_username(typed) == "sven"


def test_a_plain_assignment_keeps_airflows_meaning():
    assert not sign_in.is_rule({"12", "13"})
    assert sign_in.may_respond({"sara"}, "sara", set()) is True


def test_the_auth_manager_applies_the_rule_and_names_itself_as_a_fab_auth_manager():
    from airflow.providers.fab.auth_manager.models import User

    from etl.auth_manager import AgencyFabAuthManager

    # Airflow syncs DAG access_control to FAB permissions only for a manager whose path says FabAuthManager.
    assert "FabAuthManager" in sign_in.AUTH_MANAGER
    assert f"{AgencyFabAuthManager.__module__}.{AgencyFabAuthManager.__name__}" == sign_in.AUTH_MANAGER

    class Role:
        def __init__(self, name):
            self.name = name

    class Person:
        def __init__(self, username, *roles):
            self.username, self.roles = username, [Role(r) for r in roles]

    manager = AgencyFabAuthManager.__new__(AgencyFabAuthManager)  # the method needs no app
    ids = {a["id"] for a in sign_in.approval_assignees("sven")}
    # Person stands in for FAB's User: the rule reads its username and its roles' names.
    sara, sven = cast(User, Person("sara", "Viewer", "Steward")), cast(User, Person("sven", "User", "Steward"))
    assert manager.is_authorized_hitl_task(assigned_users=ids, user=sara)
    assert not manager.is_authorized_hitl_task(assigned_users=ids, user=sven)


def test_compose_switches_to_the_directory_sign_in_from_env():
    env = {
        "POSTGRES_PASSWORD": "p" * 20,
        "REDIS_PASSWORD": "r" * 20,
        "AIRFLOW_ADMIN_PASSWORD": "a" * 20,
        "AIRFLOW_FERNET_KEY": "k" * 44,
        "AIRFLOW_JWT_SECRET": "j" * 40,
        "AIRFLOW_API_SECRET_KEY": "s" * 40,
        "AIRFLOW_AUTH_MANAGER": sign_in.AUTH_MANAGER,
    }
    compose = load_compose(env)
    api = compose["services"]["airflow-apiserver"]["environment"]
    assert api["AIRFLOW__CORE__AUTH_MANAGER"] == sign_in.AUTH_MANAGER
    for name in (
        "ETL_LDAP_URL",
        "ETL_LDAP_BIND_DN",
        "ETL_LDAP_BIND_PASSWORD",
        "ETL_LDAP_USER_BASE",
        "ETL_LDAP_GROUP_ANALYSTS",
        "ETL_LDAP_GROUP_ENGINEERS",
        "ETL_LDAP_GROUP_STEWARDS",
        "ETL_LDAP_GROUP_ADMINS",
    ):
        assert name in api and api[name] is None, name  # passed on from .env, never a value in the file
    # Found by a reviewer: the bind password reached the workers, which run DAG code. The API server only.
    for service, spec in compose["services"].items():
        if service != "airflow-apiserver" and isinstance(spec.get("environment"), dict):
            assert "ETL_LDAP_BIND_PASSWORD" not in spec["environment"], service
    # Unset, a trial's simple auth manager.
    del env["AIRFLOW_AUTH_MANAGER"]
    api = load_compose(env)["services"]["airflow-apiserver"]["environment"]
    assert api["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")


def test_the_image_carries_python_ldap_and_the_sign_in_configuration():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-r /opt/airflow/project/requirements-ldap.txt" in dockerfile
    assert "libldap2-dev" in dockerfile and "libsasl2-dev" in dockerfile
    assert "COPY --chown=airflow:0 deploy/webserver_config.py /opt/airflow/webserver_config.py" in dockerfile
    pins = {line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    assert {"python-ldap", "apache-airflow-providers-fab", "flask-appbuilder"} <= pins
