"""One-off initialisation of an Airflow deployment: metadata schema, admin login, writer pool.

Run by the compose service ``airflow-init`` before any other Airflow
component starts, and by ``tests/test_integration_celery.py`` against a
local PostgreSQL, so the step the containers take is the step the test
proves. Idempotent: running it again migrates nothing new, rewrites the
admin password from the environment (that is how it is rotated) and resets
the pool to the configured size.

Environment:
  AIRFLOW_ADMIN_USERNAME  login name (default ``admin``); must be listed in
                          AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS
  AIRFLOW_ADMIN_PASSWORD  required; never has a default
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE  where the API server
                          reads passwords (required here: the default lives
                          in AIRFLOW_HOME, which is not shared between containers)
  AIRFLOW_UID             owner given to the passwords file when run as root
  ETL_WRITER_POOL_SLOTS   size of the writer pool (default 1: one writer per warehouse)

Under the agency's sign-in (AIRFLOW__CORE__AUTH_MANAGER =
etl.auth_manager.AgencyFabAuthManager, LDAP; docs/deployment.md) there is no
admin password: admins are the directory's admin group. The init then
creates the roles Steward and DataQuality instead (see :func:`create_steward_role`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the container sets PYTHONPATH; a checkout may not
    sys.path.insert(0, str(ROOT))

from etl.orchestration import WRITER_POOL  # noqa: E402
from etl.sign_in import AUTH_MANAGER, STEWARD_ROLE  # noqa: E402

APPROVAL_DAG = "approve_blocked_delivery"
# The Steward role on top of Viewer (stewards hold both): answer approval requests. Editing the approval DAG,
# which Airflow also asks of whoever answers one of its requests, is granted by that DAG's access_control
# (dags/approve_blocked_delivery.py), synced when the DAG is parsed. Without DAG Run create a steward cannot
# trigger any DAG. Who of the stewards may answer is etl.sign_in's rule.
STEWARD_PERMISSIONS = (("HITL Detail", ("can_read", "can_edit", "menu_access")),)
# DataQuality: list the plugins, which the UI needs to show the data-quality pages in its navigation and a
# run's "Data quality" tab; FAB's Viewer and User cannot (only Op and Admin). The pages themselves check DAG read.
QUALITY_ROLE = "DataQuality"
QUALITY_PERMISSIONS = (("Plugins", ("can_read",)),)

MIN_PASSWORD_LENGTH = 12


class InitError(Exception):
    pass


def airflow(*args: str) -> None:
    # `python -m airflow` rather than the `airflow` script: the same
    # interpreter as this script, whether in the image or a virtualenv.
    result = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise InitError(f"`airflow {' '.join(args)}` failed: " + " | ".join(tail))


def configured_users() -> set[str]:
    raw = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    return {entry.split(":")[0].strip() for entry in raw.split(",") if entry.strip()}


def write_passwords_file(path: Path, username: str, password: str) -> None:
    """Merge ``username: password`` into the auth manager's JSON file, atomically, mode 0600."""
    passwords: dict[str, str] = {}
    if path.exists():
        try:
            passwords = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as exc:
            raise InitError(f"{path} is not valid JSON ({exc}); remove it and run the init again") from exc
    passwords[username] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".passwords-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(passwords, handle)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        uid = os.environ.get("AIRFLOW_UID")
        if os.geteuid() == 0 and uid and uid.isdigit():
            # The API server runs as AIRFLOW_UID and opens the file for writing.
            os.chown(tmp, int(uid), 0)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pool_slots() -> str:
    """ETL_WRITER_POOL_SLOTS (default 1), checked before anything is changed."""
    slots = os.environ.get("ETL_WRITER_POOL_SLOTS", "1")
    if not slots.isdigit() or int(slots) < 1:
        raise InitError(f"ETL_WRITER_POOL_SLOTS must be a positive integer, got {slots!r}")
    return slots


def set_writer_pool(slots: str) -> None:
    airflow("pools", "set", WRITER_POOL, slots, "one writer per warehouse: serialises publishes")
    print(f"airflow-init: pool {WRITER_POOL} has {slots} slot(s)", flush=True)


def create_steward_role() -> None:
    """The roles Steward and DataQuality with their permissions (FAB's ``airflow roles``; idempotent)."""
    airflow("sync-perm")  # FAB's own roles (Viewer, User, Op, Admin) and every action and resource
    airflow("roles", "create", STEWARD_ROLE, QUALITY_ROLE)
    for role, permissions in ((STEWARD_ROLE, STEWARD_PERMISSIONS), (QUALITY_ROLE, QUALITY_PERMISSIONS)):
        for resource, actions in permissions:
            airflow("roles", "add-perms", role, "-r", resource, "-a", *actions)


def main() -> int:
    if os.environ.get("AIRFLOW__CORE__AUTH_MANAGER", "") == AUTH_MANAGER:
        return init_directory_sign_in()
    try:
        username = os.environ.get("AIRFLOW_ADMIN_USERNAME", "admin").strip() or "admin"
        password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InitError(
                f"AIRFLOW_ADMIN_PASSWORD must be set to at least {MIN_PASSWORD_LENGTH} characters "
                "(run `make env` to generate one)"
            )
        if username not in configured_users():
            raise InitError(
                f"admin user {username!r} is not in AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS; "
                "the API server would not let it log in"
            )
        passwords_file = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "")
        if not passwords_file:
            raise InitError("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set")
        slots = pool_slots()

        print("airflow-init: migrating the metadata database", flush=True)
        airflow("db", "migrate")
        write_passwords_file(Path(passwords_file), username, password)
        print(f"airflow-init: password of {username!r} written to {passwords_file}", flush=True)
        set_writer_pool(slots)
    except InitError as exc:
        print(f"airflow-init: {exc}", file=sys.stderr)
        return 1
    return 0


def init_directory_sign_in() -> int:
    """Migrate, create the role Steward and the writer pool; people and their roles come from the directory."""
    try:
        slots = pool_slots()
        print("airflow-init: migrating the metadata database", flush=True)
        airflow("db", "migrate")
        create_steward_role()
        print(
            f"airflow-init: role {STEWARD_ROLE} answers the approval requests of {APPROVAL_DAG}; "
            f"role {QUALITY_ROLE} sees the data-quality pages in the UI",
            flush=True,
        )
        set_writer_pool(slots)
    except InitError as exc:
        print(f"airflow-init: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
