"""Issue 24 §1: production sign-in through the agency's directory, and what each role may and may not do.

Real parts: Debian's OpenLDAP ``slapd`` loaded with people and groups
(tests/ldap_support.py), Airflow 3 with the project's auth manager
(``etl.auth_manager.AgencyFabAuthManager``, the FAB auth manager) configured by
``deploy/webserver_config.py`` exactly as compose configures it, initialised
by ``scripts/airflow_init.py`` (compose's airflow-init), on a scratch
PostgreSQL database with the LocalExecutor; Debian's Chromium signs in on
FAB's login page as each person.

The warehouse holds the 2019 sample with one blocked delivery: the web-booking
export of 2019-03 without Region Gotland's line, loaded by the CLI first.

* the directory's password is the only way in: a wrong one is refused, and
  a person in no mapped group reaches nothing;
* the analyst reads DAGs, runs and the data-quality pages, but cannot
  trigger a run, read Variables or list users;
* the engineer may trigger (the request is authorised and only then judged
  on its Param), may not read Variables or answer an approval;
* the data steward may not trigger; answers the approval in the browser,
  and the load log records the steward, the signed-in user, as approver;
* the person who triggered the approval may not answer it, although a
  steward too;
* the admin reads Variables and lists the users, who were created by
  signing in, with the roles their groups map to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
from integration_support import PG, ProcessGroups, ScratchDatabase, free_port, postgres_or_skip

from etl import publish

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
MONTH = "2019-03"
BLOCKED_FILE = f"webbtidbok_{MONTH}.csv"
SECOND_BLOCKED = "webbtidbok_2019-05.csv"  # for the attempts to decide it without a steward's answer
APPROVE_DAG = "approve_blocked_delivery"
REASON = "Region Gotland did not report web bookings for March 2019; confirmed with the region by phone"
STARTUP_TIMEOUT = 180
RUN_TIMEOUT = 240
UI_TIMEOUT_MS = 30_000


class AgencyAirflow:
    """Airflow's components with the directory sign-in, on a scratch database; API calls as a signed-in user."""

    def __init__(self, base: Path, database_url: str, directory):
        self.base = base
        self.home = base / "airflow-home"
        self.landing = base / "landing"
        self.warehouse = base / "warehouse"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.directory = directory
        self.home.mkdir(parents=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "ETL_", "PYTHONPATH"))}
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                # What compose sets (docker-compose.yml): the agency's auth manager, FAB's config file.
                "AIRFLOW__CORE__AUTH_MANAGER": "etl.auth_manager.AgencyFabAuthManager",
                "AIRFLOW__FAB__CONFIG_FILE": str(ROOT / "deploy" / "webserver_config.py"),
                **directory.airflow_env(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
                "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "ETL_LANDING_URI": str(self.landing),
                "ETL_WAREHOUSE_URI": str(self.warehouse),
                "ETL_LANDING_SETTLE_SECONDS": "0",
                # The module's sign-ins come from 127.0.0.1 (the guessing test's from 127.0.0.2): more than FAB's 5
                # per 40 s (the default kept).
                "ETL_LOGIN_RATE_LIMIT": "100 per 40 second",
                "AIRFLOW__API_AUTH__JWT_EXPIRATION_TIME": "28800",  # as compose sets it
                "AIRFLOW__FAB__SESSION_MAX_LIFETIME_MINUTES": "480",  # as compose sets it
                "GX_ANALYTICS_ENABLED": "false",
                "PYTHONPATH": str(ROOT),
            }
        )
        self.env = env
        self.groups = ProcessGroups(base / "process-logs", ("AIRFLOW_HOME", str(self.home)))
        self.tokens: dict[str, str] = {}

    def run(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        for component in ("api-server", "scheduler", "dag-processor"):
            self.groups.start(component, [AIRFLOW, component], self.env, cwd=self.base)

    def wait_for(self, what: str, check, timeout: float = STARTUP_TIMEOUT, interval: float = 0.5):
        return self.groups.wait_for(what, check, timeout=timeout, interval=interval, errors=(httpx.HTTPError, OSError))

    def healthy(self) -> bool:
        health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        return all(health[part]["status"] == "healthy" for part in ("metadatabase", "scheduler", "dag_processor"))

    def token(self, uid: str, typed: str | None = None) -> str:
        """A JWT for ``uid`` (signing in as ``typed``, default ``uid``), from FAB's token endpoint, which checks
        the password against the directory."""
        typed = uid if typed is None else typed
        if typed not in self.tokens:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                timeout=30,
                json={"username": typed, "password": self.directory.passwords[uid]},
            )
            assert response.status_code == 201, (typed, response.status_code, response.text[:300])
            self.tokens[typed] = response.json()["access_token"]
        return self.tokens[typed]

    def api(self, uid: str, typed: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {self.token(uid, typed)}"}
        )

    def stop(self) -> None:
        self.groups.stop(grace=15)


@pytest.fixture(scope="module")
def agency(tmp_path_factory, directory, chromium_executable):
    """Airflow with the directory sign-in, initialised as compose does, over a warehouse with one blocked delivery."""
    postgres_or_skip()
    started = time.monotonic()
    base = tmp_path_factory.mktemp("agency-airflow")
    with ScratchDatabase(PG, prefix="etl_signin") as database:
        airflow = AgencyAirflow(base, database.url(), directory)
        done = airflow.run(
            sys.executable,
            "-m",
            "etl",
            "sample",
            "--out",
            str(airflow.landing),
            "--years",
            "2019-2019",
            "--units",
            "5",
            "--unit-months",
            "1",
        )
        assert done.returncode == 0, done.stderr[-3000:]
        for name in (BLOCKED_FILE, SECOND_BLOCKED):
            # Gotland's line out (the sample spells the region by name or by code, month by month).
            export = airflow.landing / "ehealth" / name
            lines = export.read_bytes().splitlines(keepends=True)
            kept = [
                line
                for line in lines
                if b"Gotland" not in line and re.split(rb"[;,\t]", line)[1:2] not in ([b"09"], [b"SE-09"])
            ]
            assert len(kept) == len(lines) - 1, name
            export.write_bytes(b"".join(kept))
        # The warehouse is loaded by the CLI while the metadata database is initialised (no Airflow runs yet).
        with open(base / "load-warehouse.log", "w+", encoding="utf-8") as log:
            load = subprocess.Popen(
                [sys.executable, "-m", "etl", "run", "all", "--offline-snapshot"],
                env=airflow.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                init = airflow.run(sys.executable, str(ROOT / "scripts" / "airflow_init.py"))
                load.wait(timeout=600)
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
            log.seek(0)
            loaded = log.read()
        assert load.returncode == 1 and f"{BLOCKED_FILE}: blocked" in loaded, loaded[-6000:]
        assert f"{SECOND_BLOCKED}: blocked" in loaded, loaded[-6000:]
        assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
        assert "role Steward" in init.stdout and "role DataQuality" in init.stdout, init.stdout
        try:
            airflow.start()
            airflow.wait_for("the API server, scheduler and DAG processor", airflow.healthy)
            with airflow.api("adam") as admin:
                airflow.wait_for(
                    f"DAG {APPROVE_DAG} to be parsed",
                    lambda: admin.get(f"/api/v2/dags/{APPROVE_DAG}").status_code == 200,
                )
                assert admin.patch(f"/api/v2/dags/{APPROVE_DAG}", json={"is_paused": False}).status_code == 200
            print(
                f"\nAirflow with directory sign-in ready at {airflow.base_url} in "
                f"{time.monotonic() - started:.0f} s (logs: {airflow.groups.logs})"
            )
            yield airflow
        finally:
            airflow.stop()


def _sign_in(browser, agency, uid: str, shots=None):
    """A browser context signed in as ``uid`` on FAB's login page, with the directory's password."""
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=agency.base_url, viewport={"width": 1400, "height": 900}, locale="en-GB", timezone_id="UTC"
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    page.goto("/")
    expect(page).to_have_url(f"{agency.base_url}/auth/login/?next=%2F")
    page.locator("#username").fill(uid)
    page.locator("#password").fill(agency.directory.passwords[uid])
    page.locator("input[type=submit], button[type=submit]").first.click()
    try:
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=90_000)
    except Exception:
        raise AssertionError(
            f"{uid} could not sign in: still at {page.url}: {page.locator('body').inner_text()[:500]}"
        ) from None
    assert [c for c in context.cookies() if c["name"] == "_token"], f"{uid}: no session cookie after signing in"
    if shots is not None:
        shots(page, f"signed-in-{uid}")
    return context, page


class Shots:
    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    def __call__(self, page, name: str) -> None:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        print(f"screenshot: {path}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return Shots(tmp_path_factory.mktemp("sign-in-screenshots"))


# What each person may do: status codes of the requests the UI makes for them, with their own session cookie.
# trigger: a run of ehealth_adoption with a month that is not YYYY-MM — 403 when the person may not trigger
# at all, 400 when they may and the Param is judged (no run is made either way).
PROBES = {
    "dags": ("GET", "/api/v2/dags?limit=5", None),
    "variables": ("GET", "/api/v2/variables", None),
    "connections": ("GET", "/api/v2/connections", None),
    "trigger": ("POST", "/api/v2/dags/ehealth_adoption/dagRuns", {"logical_date": None, "conf": {"period": "March"}}),
    "users": ("GET", "/auth/fab/v1/users", None),
    "quality": ("GET", "/etl-quality/", None),
    "plugins": ("GET", "/api/v2/plugins", None),  # the UI's navigation entry to the data-quality pages
}
MAY = {
    "ana": {
        "dags": 200,
        "variables": 403,
        "connections": 403,
        "trigger": 403,
        "users": 403,
        "quality": 200,
        "plugins": 200,
    },
    "erik": {
        "dags": 200,
        "variables": 403,
        "connections": 403,
        "trigger": 400,
        "users": 403,
        "quality": 200,
        "plugins": 200,
    },
    "sara": {
        "dags": 200,
        "variables": 403,
        "connections": 403,
        "trigger": 403,
        "users": 403,
        "quality": 200,
        "plugins": 200,
    },
    "adam": {
        "dags": 200,
        "variables": 200,
        "connections": 200,
        "trigger": 400,
        "users": 200,
        "quality": 200,
        "plugins": 200,
    },
    "olle": {
        "dags": 403,
        "variables": 403,
        "connections": 403,
        "trigger": 403,
        "users": 403,
        "quality": 403,
        "plugins": 403,
    },
}


def test_a_wrong_password_is_refused_on_the_login_page(browser, agency, shots):
    from playwright.sync_api import expect

    context = browser.new_context(base_url=agency.base_url)
    try:
        page = context.new_page()
        page.goto("/auth/login/")
        page.locator("#username").fill("ana")
        page.locator("#password").fill("not-her-password")
        page.locator("input[type=submit], button[type=submit]").first.click()
        expect(page.get_by_text("Invalid login", exact=False)).to_be_visible()
        assert not [c for c in context.cookies() if c["name"] == "_token"]
        shots(page, "wrong-password")
    finally:
        context.close()
    refused = httpx.post(f"{agency.base_url}/auth/token", json={"username": "ana", "password": "nope"}, timeout=30)
    assert refused.status_code == 401, refused.text


@pytest.mark.parametrize("uid", sorted(MAY))
def test_what_each_role_may_and_may_not_do(browser, agency, shots, uid):
    context, page = _sign_in(browser, agency, uid, shots)
    try:
        got = {}
        for name, (method, path, body) in PROBES.items():
            response = page.request.fetch(path, method=method, data=body, max_redirects=0)
            got[name] = response.status
        assert got == MAY[uid], f"{uid}: {got}"
    finally:
        context.close()


def test_the_analyst_reads_the_data_quality_pages_and_has_no_trigger(browser, agency, shots):
    from playwright.sync_api import expect

    context, page = _sign_in(browser, agency, "ana")
    try:
        page.goto("/dags/ehealth_adoption")
        expect(page.get_by_text("ehealth_adoption").first).to_be_visible()
        expect(page.get_by_role("button", name="Dag Docs")).to_be_visible()
        shots(page, "analyst-dag-page")
        # The data-quality pages are in the analyst's navigation (role DataQuality), not only reachable by URL.
        page.goto("/")
        page.get_by_role("link", name="Data quality").click()
        expect(page).to_have_url(re.compile(r"/plugin/etl-quality"))
        expect(page.frame_locator("iframe").first.locator("h1")).to_have_text("Data quality: tables")
        print("analyst's Trigger Dag buttons:", page.get_by_role("button", name="Trigger Dag").count())
        page.goto("/etl-quality/deliveries")
        expect(page.get_by_role("row").filter(has_text=BLOCKED_FILE)).to_contain_text("blocked")
        shots(page, "analyst-deliveries")
    finally:
        context.close()


def _hitl_path(run_id: str) -> str:
    return (
        f"/api/v2/dags/{APPROVE_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/decide/-1/hitlDetails"
    )


def test_a_steward_who_did_not_ask_approves_and_is_recorded(browser, agency, shots):
    from playwright.sync_api import expect

    # Sven, engineer and steward, asks for the approval.
    with agency.api("sven") as sven:
        created = sven.post(
            f"/api/v2/dags/{APPROVE_DAG}/dagRuns", json={"logical_date": None, "conf": {"delivery": BLOCKED_FILE}}
        )
        assert created.status_code == 200, created.text
        run = created.json()
        assert run["triggering_user_name"] == "sven", run
    run_id = run["dag_run_id"]

    with agency.api("adam") as admin:

        def awaiting():
            states = {
                ti["task_id"]: ti["state"]
                for ti in admin.get(
                    f"/api/v2/dags/{APPROVE_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
                ).json()["task_instances"]
            }
            if set(states.values()) & {"failed", "upstream_failed", "up_for_retry"}:
                raise AssertionError(f"{APPROVE_DAG} failed before asking: {states}")
            return states.get("decide") == "awaiting_input"

        agency.wait_for("the decide task to wait for input", awaiting, RUN_TIMEOUT, interval=1)
        # As in tests/test_ui_browser.py: let the scheduler see the pause before anyone answers (Airflow 3.3.2).
        time.sleep(8)
        detail = admin.get(_hitl_path(run_id)).json()
    assignees = {a["id"]: a["name"] for a in detail["assigned_users"]}
    assert assignees == {"role:Steward": "any data steward", "not:sven": "but not sven, who asked"}, detail

    answer = {"chosen_options": ["Approve"], "params_input": {"reason": REASON}}
    # Who asked may not answer, though a steward — not under another spelling of the name either, which the
    # directory takes for the same account; an engineer or analyst may not answer at all.
    # The long s and the fullwidth letters are look-alikes the directory folds to sven (a reviewer's way in).
    for uid, typed in (
        ("sven", "sven"),
        ("sven", "Sven "),
        ("sven", " SVEN"),
        ("sven", "\u017fven"),
        ("sven", "\uff53\uff56\uff45\uff4e"),
        ("erik", "erik"),
        ("ana", "ana"),
    ):
        with agency.api(uid, typed) as client:
            refused = client.patch(_hitl_path(run_id), json=answer)
            assert refused.status_code == 403, (typed, refused.status_code, refused.text[:300])

    # Sara, a steward who did not ask, answers in the browser.
    context, page = _sign_in(browser, agency, "sara")
    try:
        page.goto("/required_actions")
        action = page.get_by_role("row").filter(has_text=run_id)
        expect(action).to_contain_text(APPROVE_DAG)
        shots(page, "steward-required-actions")
        action.locator("a[href$='/tasks/decide/required_actions']").first.click()
        expect(page.get_by_text(BLOCKED_FILE, exact=False).first).to_be_visible()
        page.locator("#element_reason").fill(REASON)
        approve = page.get_by_role("button", name="Approve", exact=True)
        shots(page, "steward-approval-form")
        with page.expect_response(lambda r: "/hitlDetails" in r.url and r.request.method == "PATCH") as answered:
            approve.click()
        assert answered.value.status == 200, answered.value.text()
        assert answered.value.json()["responded_by"]["name"] == "sara"
        shots(page, "steward-approved")
    finally:
        context.close()

    with agency.api("adam") as admin:

        def finished():
            state = admin.get(f"/api/v2/dags/{APPROVE_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}").json()[
                "state"
            ]
            return state if state in ("success", "failed") else None

        assert agency.wait_for("the approval run to finish", finished, RUN_TIMEOUT, interval=1) == "success"
        # Public, the role of everyone registered at first sign-in, grants nothing (olle's row of MAY).
        users = {
            u["username"]: sorted(r["name"] for r in u["roles"] if r["name"] != "Public")
            for u in admin.get("/auth/fab/v1/users").json()["users"]
        }
    # Everyone who signed in was created with the roles their directory groups map to.
    # One user per directory account, however the name was typed (" SVEN", "Sven " signed in above).
    assert sorted(users) == ["adam", "ana", "erik", "olle", "sara", "sven"], users
    assert users["sara"] == ["DataQuality", "Steward", "Viewer"], users
    assert users["sven"] == ["DataQuality", "Steward", "User", "Viewer"], users
    assert users["ana"] == ["DataQuality", "Viewer"] and users["erik"] == ["DataQuality", "User"], users
    assert users["adam"] == ["Admin"] and users["olle"] == [], users

    log = publish.read_load_log(str(agency.warehouse)).to_pylist()
    [decision] = [r for r in log if r["outcome"] == "approved"]
    assert decision["message"] == f"approved by sara: {REASON}", decision


def _run_path(run_id: str) -> str:
    return f"/api/v2/dags/{APPROVE_DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


def _states(admin: httpx.Client, run_id: str) -> dict[str, str]:
    tis = admin.get(f"{_run_path(run_id)}/taskInstances").json()["task_instances"]
    return {ti["task_id"]: ti["state"] for ti in tis}


def test_only_an_answer_airflow_stored_decides_and_a_run_asks_once(agency):
    """Found by a reviewer: an admin published under a steward's name by writing `decide`'s XCom and clearing
    `record_decision`; a steward-engineer overturned a rejection alone by clearing the run and answering again."""
    with agency.api("erik") as erik:
        created = erik.post(
            f"/api/v2/dags/{APPROVE_DAG}/dagRuns", json={"logical_date": None, "conf": {"delivery": SECOND_BLOCKED}}
        )
        assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]

    def finished(admin):
        state = admin.get(_run_path(run_id)).json()["state"]
        return state if state in ("success", "failed") else None

    with agency.api("adam") as admin:
        agency.wait_for(
            "decide to wait for input",
            lambda: _states(admin, run_id).get("decide") == "awaiting_input",
            RUN_TIMEOUT,
            interval=1,
        )
        # Nobody answers: decide is marked done by hand, and a forged answer is written where it used to be read.
        marked = admin.patch(f"{_run_path(run_id)}/taskInstances/decide", json={"new_state": "success"})
        assert marked.status_code == 200, marked.text
        assert agency.wait_for("the run to end", lambda: finished(admin), RUN_TIMEOUT, interval=1) == "failed"
        forged = admin.post(
            f"{_run_path(run_id)}/taskInstances/decide/xcomEntries",
            json={
                "key": "return_value",
                "value": {
                    "chosen_options": ["Approve"],
                    "params_input": {"reason": "forged by an admin " * 2},
                    "responded_by_user": {"id": "sara", "name": "sara"},
                },
            },
        )
        assert forged.status_code in (200, 201), forged.text
        cleared = admin.post(
            f"/api/v2/dags/{APPROVE_DAG}/clearTaskInstances",
            json={
                "dag_run_id": run_id,
                "task_ids": ["record_decision"],
                "dry_run": False,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )
        assert cleared.status_code == 200, cleared.text
        assert agency.wait_for("the run to end again", lambda: finished(admin), RUN_TIMEOUT, interval=1) == "failed"
        assert _states(admin, run_id)["record_decision"] == "failed"
        # Cleared whole, the run does not ask again: its decide fails (trigger a new run to ask anew).
        cleared = admin.post(
            f"/api/v2/dags/{APPROVE_DAG}/clearTaskInstances",
            json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True},
        )
        assert cleared.status_code == 200, cleared.text
        assert agency.wait_for("the cleared run to end", lambda: finished(admin), RUN_TIMEOUT, interval=1) == "failed"
        states = _states(admin, run_id)
        assert states["find_blocked_delivery"] == "success" and states["decide"] == "failed", states
    log = publish.read_load_log(str(agency.warehouse)).to_pylist()
    assert not [
        r
        for r in log
        if r["outcome"] in ("approved", "rejected") and any(SECOND_BLOCKED in f for f in r["source_files"] or [])
    ], "nobody answered: nothing decided"
    published = [
        r for r in log if r["outcome"] == "published" and any(SECOND_BLOCKED in f for f in r["source_files"] or [])
    ]
    assert published == [], "the blocked file stayed blocked"


def test_an_admin_cannot_give_himself_a_role_take_a_name_or_rename_a_role(agency):
    """Found by a reviewer: adam (Admin) PATCHed his own roles to [Admin, Steward], then his name to "sara ",
    and answered an approval request as "sara". Names and roles come from the directory: Airflow refuses
    to change them, with one line saying where to."""
    agency.token("ana")  # signed in once: her Airflow user exists
    with agency.api("adam") as admin:
        roles = admin.patch(
            "/auth/fab/v1/users/adam",
            params={"update_mask": "roles"},
            json={"roles": [{"name": "Admin"}, {"name": "Steward"}]},
        )
        assert roles.status_code == 403 and "come from the agency's directory" in roles.text, roles.text
        renamed = admin.patch("/auth/fab/v1/users/adam", params={"update_mask": "username"}, json={"username": "sara "})
        assert renamed.status_code == 403 and "refused: username" in renamed.text, renamed.text
        other = admin.patch(
            "/auth/fab/v1/users/ana", params={"update_mask": "roles"}, json={"roles": [{"name": "Steward"}]}
        )
        assert other.status_code == 403, other.text
        role = admin.patch("/auth/fab/v1/roles/Admin", params={"update_mask": "name"}, json={"name": "Steward"})
        assert role.status_code == 403 and "keep their names" in role.text, role.text
        # Nothing changed: what the directory gave stays.
        users = {
            u["username"]: sorted(r["name"] for r in u["roles"] if r["name"] != "Public")
            for u in admin.get("/auth/fab/v1/users").json()["users"]
        }
        assert users["adam"] == ["Admin"] and users["ana"] == ["DataQuality", "Viewer"], users
        assert admin.get("/auth/fab/v1/roles/Admin").status_code == 200
        # What the directory does not own stays an admin's to edit.
        mail = admin.patch(
            "/auth/fab/v1/users/adam", params={"update_mask": "email"}, json={"email": "adam.admin@agency.test"}
        )
        assert mail.status_code == 200, mail.text


def test_a_sign_in_ends_eight_hours_after_the_password_however_active(browser, agency):
    """Found by a reviewer: FAB's session slid, and /auth/login/ handed out fresh 8-hour tokens without the
    directory; someone removed from a group kept the role. The token's deadline is the sign-in's."""
    import base64
    import json

    def expiry(context) -> int:
        token = next(c["value"] for c in context.cookies() if c["name"] == "_token")
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]

    context, page = _sign_in(browser, agency, "erik")
    try:
        first = expiry(context)
        time.sleep(5)
        page.goto("/auth/login/")  # signed in already: FAB issues a new token from the session
        page.wait_for_url(lambda url: "/auth/login" not in url)
        # The same deadline (to the second: both are whole seconds left of the session, truncated); a sliding
        # session would give one 5 s later.
        assert expiry(context) <= first + 1, "a token reissued from the session outlives the sign-in"
    finally:
        context.close()


def test_a_bookmarked_data_quality_page_leads_through_the_directory_login_and_back(browser, agency, shots):
    from playwright.sync_api import expect

    context = browser.new_context(base_url=agency.base_url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = context.new_page()
        # An expired or forged session cookie, as a bookmark opened the next morning carries.
        context.add_cookies(
            [{"name": "_token", "value": "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiIxIn0.c2ln", "url": agency.base_url}]
        )
        page.goto("/etl-quality/deliveries")
        expect(page).to_have_url(re.compile(r"/auth/login/\?next="))
        assert BLOCKED_FILE not in page.locator("body").inner_text()
        page.locator("#username").fill("ana")
        page.locator("#password").fill(agency.directory.passwords["ana"])
        page.locator("input[type=submit], button[type=submit]").first.click()
        expect(page).to_have_url(f"{agency.base_url}/etl-quality/deliveries")
        expect(page.get_by_role("row").filter(has_text=BLOCKED_FILE).first).to_be_visible()
        shots(page, "bookmark-after-login")
    finally:
        context.close()


def test_a_token_lasts_a_working_day(agency):
    import base64
    import json

    payload = agency.token("ana").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 8 * 3600, claims


def test_password_guessing_through_the_token_endpoint_is_rate_limited(agency):
    """130 wrong passwords at once from one client address (16 at a time, so they fall in one 40-second
    window): at most 100 are judged (ETL_LOGIN_RATE_LIMIT here: 100 per 40 second), the rest refused with 429
    unjudged, and then the right password too. Another address signs in meanwhile.

    The guesses come from 127.0.0.2, an address no other test signs in from: the window starts empty. (From
    127.0.0.1, the earlier tests' sign-ins in the window expired during the burst, and their slots let the
    right password through: the limit counts requests of the last 40 seconds, whoever sent them.)
    """
    from concurrent.futures import ThreadPoolExecutor

    guesser = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=agency.base_url, timeout=60, transport=guesser) as client:

        def guess(attempt: int) -> int:
            return client.post("/auth/token", json={"username": "ana", "password": f"guess-{attempt}"}).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(guess, range(130)))
        right = client.post("/auth/token", json={"username": "ana", "password": agency.directory.passwords["ana"]})
        took = time.monotonic() - started
        assert took < 40, f"the guesses took {took:.0f} s: longer than the window, they prove nothing"
        assert set(statuses) <= {401, 429}, statuses
        assert statuses.count(401) == 100 and statuses.count(429) == 30, (took, statuses)
        # The right password is refused too while the limit holds, and unjudged.
        assert right.status_code == 429, right.text
    # The limit is the guesser's: a sign-in from 127.0.0.1 meanwhile is judged.
    other = httpx.post(
        f"{agency.base_url}/auth/token",
        timeout=30,
        json={"username": "ana", "password": agency.directory.passwords["ana"]},
    )
    assert other.status_code == 201, other.text
