"""docker-compose.yml's Airflow configuration, run with real Airflow components and no Docker.

The Airflow environment is read from docker-compose.yml itself (each
service's ``environment`` after Compose interpolation, the secrets generated
by scripts/make_env.py) and only what a container network provides is
rewritten: the service hosts ``postgres``/``redis``/``airflow-apiserver``
become 127.0.0.1, container paths become the folders their volumes mount,
and ports that might be taken here get free ones. Then:

* a fresh PostgreSQL role and database (dropped at the end) and an empty
  Redis database number;
* scripts/airflow_init.py, as airflow-init runs it (migrate, admin
  password, writer pool);
* ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and
  ``celery worker``, each in its own process group;
* the compose health checks, run as Docker would run them;
* over the REST API: unauthenticated and wrong-password requests refused,
  login as the admin, Variables set, reference_data unpaused and triggered;
  the task runs on the Celery worker and writes Parquet where the Variable
  points, not where the environment does;
* everything stopped, and no process left behind.

Skips only when PostgreSQL or Redis is unreachable, and fails instead when
ETL_REQUIRE_SERVICES=1 (set by .ci/run).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from integration_support import ROOT, ProcessGroups, free_port, load_compose

from etl import publish

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("ETL_TEST_PG_USER", "postgres"), "dbname": "postgres"}
REDIS = ("127.0.0.1", 6379)
COMPONENTS = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker")
# In the compose network these names resolve to containers; here everything is on loopback.
LOCAL_HOSTS = {"postgres", "redis", "airflow-apiserver", "localhost"}
# Paths the Dockerfile bakes into the image (no volume for them): the checkout has them.
IMAGE_PATHS = {"/opt/airflow/project": ROOT}
STARTUP_TIMEOUT = 240
RUN_TIMEOUT = 300


def _load_make_env():
    spec = importlib.util.spec_from_file_location("make_env", ROOT / "scripts" / "make_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- services ----------------------------------------------------------------------


def _unreachable() -> list[str]:
    import psycopg2
    import redis

    problems = []
    try:
        psycopg2.connect(connect_timeout=5, **PG).close()
    except psycopg2.Error as exc:
        problems.append(f"PostgreSQL at {PG['host']}:{PG['port']} unreachable ({str(exc).strip()})")
    try:
        redis.Redis(*REDIS, socket_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {REDIS[0]}:{REDIS[1]} unreachable ({exc})")
    return problems


@pytest.fixture(scope="module")
def services():
    problems = _unreachable()
    if problems:
        message = "; ".join(problems)
        if os.environ.get("ETL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}, and ETL_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(message)


@pytest.fixture(scope="module")
def fresh_database(services):
    """A role and database of their own, named like nothing else, dropped afterwards."""
    import psycopg2
    from psycopg2 import sql

    name = f"etl_it_{uuid.uuid4().hex[:10]}"
    password = _load_make_env().generate()["POSTGRES_PASSWORD"]
    admin = psycopg2.connect(**PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
    try:
        yield {"POSTGRES_USER": name, "POSTGRES_DB": name, "POSTGRES_PASSWORD": password}
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="module")
def redis_db(services):
    """An empty Redis database number (not 0, which a developer's own tools use), flushed afterwards."""
    import redis

    for number in range(15, 0, -1):
        client = redis.Redis(*REDIS, db=number)
        if client.dbsize() == 0:
            break
    else:
        pytest.fail("no empty Redis database among 1-15")
    try:
        yield number
    finally:
        client.flushdb()


# --- the deployment, on this machine -----------------------------------------------


class LocalDeployment:
    """The compose services' Airflow configuration, rewritten for loopback, run as processes."""

    def __init__(self, workdir: Path, compose: dict, redis_db: int):
        self.workdir = workdir
        self.compose = compose
        self.redis_db = redis_db
        self.logs = workdir / "process-logs"
        self.logs.mkdir()
        self.api_port, self.health_port = free_port(), free_port()
        # Container port -> port here, for URLs on the rewritten hosts.
        self.ports = {8080: self.api_port, 8974: self.health_port}
        self.local_only = {
            # Containers listen on all interfaces of their private network; here, loopback only.
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.health_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        self.airflow_home = self.local_path("/opt/airflow", "airflow-apiserver")
        # Every component carries our AIRFLOW_HOME: that finds task runners that left their group.
        self.groups = ProcessGroups(self.logs, ("AIRFLOW_HOME", str(self.airflow_home)))

    # -- rewriting
    def mounts(self, service: str) -> list[tuple[str, Path]]:
        """(container path, local path) for a service: the image's own paths and its volumes, longest first."""
        pairs = [(target, path) for target, path in IMAGE_PATHS.items()]
        pairs.append(("/opt/airflow", self.workdir / "airflow-home"))  # the image's AIRFLOW_HOME
        for volume in self.compose["services"][service].get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                local = (ROOT / source).resolve() if source.startswith(".") else Path(source)
            else:  # a named volume: one folder, shared by every service that mounts it
                local = self.workdir / "volumes" / source
            pairs.append((target, local))
        return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)

    def local_path(self, container_path: str, service: str) -> Path:
        for target, local in self.mounts(service):
            if container_path == target or container_path.startswith(target + "/"):
                return local / container_path[len(target) :].lstrip("/")
        raise AssertionError(f"{container_path} is neither mounted nor in the image for {service}")

    def rewrite_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS:
            return url
        port = parts.port if parts.port is None else self.ports.get(parts.port, parts.port)
        userinfo, path = parts.netloc.rpartition("@")[0], parts.path
        if parts.hostname == "redis":
            # The machine's Redis has no password (the compose one requires it) and
            # other tests may use database 0.
            userinfo, path = "", f"/{self.redis_db}"
        netloc = (f"{userinfo}@" if userinfo else "") + "127.0.0.1" + (f":{port}" if port else "")
        return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))

    def rewrite(self, value: str, service: str) -> str:
        value = re.sub(r"[a-z][a-z0-9+.\-]*://[^\s\"']+", lambda m: self.rewrite_url(m.group(0)), value)
        return re.sub(
            r"(?<![\w/.])/opt/airflow(?:/[\w.\-]+)*", lambda m: str(self.local_path(m.group(0), service)), value
        )

    def environment(self, service: str) -> dict[str, str]:
        # Nothing from the developer's or the Makefile's Airflow settings may leak in.
        env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "ETL_", "PYTHONPATH"))}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["AIRFLOW_HOME"] = str(self.airflow_home)
        for key, value in self.compose["services"][service]["environment"].items():
            if value is not None:  # Compose leaves valueless entries unset when the host has none
                env[key] = self.rewrite(str(value), service)
        env.update(self.local_only)
        return env

    # -- processes
    def init(self) -> subprocess.CompletedProcess:
        command = "\n".join(self.compose["services"]["airflow-init"]["command"])
        found = re.search(r"python (\S+airflow_init\.py)", command)
        assert found, f"the airflow-init command runs no airflow_init.py:\n{command}"
        script = found.group(1)
        for target, local in self.mounts("airflow-init"):
            if not target.startswith("/opt/airflow/project"):
                local.mkdir(parents=True, exist_ok=True)  # what the init's mkdir/chown does
        return subprocess.run(
            [sys.executable, self.rewrite(script, "airflow-init")],
            env=self.environment("airflow-init"),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def start(self, service: str) -> None:
        # The image's entrypoint runs `airflow <command>`.
        argv = [str(VENV_BIN / "airflow"), *shlex.split(self.compose["services"][service]["command"])]
        self.groups.start(service, argv, self.environment(service), cwd=self.workdir)

    def log_tail(self, service: str, lines: int = 40) -> str:
        return self.groups.log_tail(service, lines)

    def all_logs(self) -> str:
        return self.groups.all_logs()

    def assert_running(self) -> None:
        self.groups.assert_running()

    def healthcheck(self, service: str) -> subprocess.CompletedProcess:
        """The service's compose health check, run as Docker runs it in the container."""
        test = self.compose["services"][service]["healthcheck"]["test"]
        env = self.environment(service)
        # Inside a container HOSTNAME is its host name. Celery names its node
        # after socket.gethostname(); Airflow records jobs under getfqdn().
        env["HOSTNAME"] = socket.gethostname() if "celery" in " ".join(test) else _airflow_fqdn()
        if test[0] == "CMD":
            argv = [self.rewrite(arg, service) for arg in test[1:]]
        else:
            argv = ["/bin/sh", "-c", self.rewrite(test[1], service)]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    def stray_processes(self) -> list:
        """Processes still in our process groups, or anywhere with our AIRFLOW_HOME."""
        return self.groups.stray_processes()

    def stop(self, grace: float = 45) -> None:
        """SIGTERM every process group, then SIGKILL what is left after ``grace`` seconds."""
        self.groups.stop(grace)


def _airflow_fqdn() -> str:
    # What airflow.utils.net.getfqdn() records as a job's hostname.
    name = socket.gethostname()
    try:
        for info in socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME):
            if info[3]:
                return info[3]
    except OSError:
        pass
    return name


def wait_for(what: str, check, timeout: float, deployment: LocalDeployment, interval: float = 2.0):
    return deployment.groups.wait_for(
        what, check, timeout=timeout, interval=interval, errors=(httpx.HTTPError, OSError)
    )


# --- the test ------------------------------------------------------------------------


def test_compose_configuration_runs_a_dag_on_a_celery_worker(tmp_path, fresh_database, redis_db):
    started = time.monotonic()
    landing, env_warehouse = tmp_path / "landing", tmp_path / "warehouse-from-env"
    var_warehouse = tmp_path / "warehouse-from-variable"
    secrets = _load_make_env().generate()
    compose = load_compose(
        {
            **secrets,
            **fresh_database,
            "ETL_LANDING_DIR": str(tmp_path / "landing-volume"),
            "ETL_WAREHOUSE_DIR": str(env_warehouse),
            # Two task slots: enough for this test on a 2-core machine.
            "AIRFLOW_WORKER_CONCURRENCY": "2",
        }
    )
    subprocess.run(
        [sys.executable, "-m", "etl", "sample", "--out", str(landing), "--units", "5", "--unit-months", "1"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )

    deployment = LocalDeployment(tmp_path, compose, redis_db)
    # The redirected settings really are the compose file's, with only hosts and ports changed.
    worker_env = deployment.environment("airflow-worker")
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker_env["AIRFLOW__CORE__FERNET_KEY"] == secrets["AIRFLOW_FERNET_KEY"]
    assert worker_env["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["AIRFLOW_JWT_SECRET"]
    assert worker_env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:6379/{redis_db}"
    assert worker_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{deployment.api_port}/execution/"
    assert worker_env["ETL_WAREHOUSE_URI"] == str(env_warehouse)

    init = deployment.init()
    assert init.returncode == 0, init.stdout + init.stderr
    assert "pool etl_warehouse_writer has 1 slot(s)" in init.stdout

    api = f"http://127.0.0.1:{deployment.api_port}"
    try:
        for service in COMPONENTS:
            deployment.start(service)
        with httpx.Client(base_url=api, timeout=30) as client:
            wait_for(
                "the API server",
                lambda: client.get("/api/v2/monitor/health").status_code == 200,
                STARTUP_TIMEOUT,
                deployment,
            )

            # Every compose health check passes as Docker would run it.
            for service in COMPONENTS:
                wait_for(
                    f"{service}'s health check",
                    lambda s=service: deployment.healthcheck(s).returncode == 0,
                    STARTUP_TIMEOUT,
                    deployment,
                    interval=5,
                )

            # No anonymous access, no wrong password.
            assert client.get("/api/v2/dags").status_code in (401, 403)
            wrong = client.post("/auth/token", json={"username": "admin", "password": "not-the-password"})
            assert wrong.status_code == 401
            login = client.post(
                "/auth/token", json={"username": "admin", "password": secrets["AIRFLOW_ADMIN_PASSWORD"]}
            )
            assert login.status_code == 201, login.text
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

            pools = client.get("/api/v2/pools/etl_warehouse_writer")
            assert pools.status_code == 200 and pools.json()["slots"] == 1

            # Variables override the environment: the data must land where they point.
            for key, value in {"etl_landing_uri": landing, "etl_warehouse_uri": var_warehouse}.items():
                response = client.post("/api/v2/variables", json={"key": key, "value": str(value)})
                assert response.status_code == 201, response.text

            run = trigger_and_wait(client, deployment, "reference_data", {"offline_snapshot": True})
            tis = client.get(f"/api/v2/dags/reference_data/dagRuns/{run['dag_run_id']}/taskInstances").json()
            assert [ti["state"] for ti in tis["task_instances"]] == ["success"]
            assert tis["task_instances"][0]["hostname"]  # reported by the worker that ran it

            dim_region = publish.read_table(str(var_warehouse), "dim_region")
            assert dim_region.num_rows == 21
            assert sorted(dim_region.column("region_code").to_pylist())[:3] == ["01", "03", "04"]
            log = publish.read_load_log(str(var_warehouse)).to_pylist()
            by_table = {row["table_name"]: row for row in log}
            assert by_table["dim_region"]["outcome"] == "published"
            assert by_table["dim_region"]["rows_loaded"] == 21
            assert len({row["batch_id"] for row in log}) == 1, "one run, one batch"
            for row in log:
                assert row["rows_in"] == row["rows_loaded"] + row["rows_quarantined"], row
            assert not list(env_warehouse.rglob("*.parquet")), "the Variable must win over ETL_WAREHOUSE_URI"

            # Other pipelines' DAGs, when present and parsed, run the same way.
            if (ROOT / "dags" / "county_reports.py").exists() and client.get(
                "/api/v2/dags/county_reports"
            ).status_code == 200:
                trigger_and_wait(client, deployment, "county_reports", {})
                assert len(publish.read_load_log(str(var_warehouse))) > len(log)
                print("\ncounty_reports: triggered on the Celery worker, run succeeded")

        worker_log = (deployment.logs / "airflow-worker.log").read_text(errors="replace")
        assert "execute_workload" in worker_log and "succeeded" in worker_log, deployment.log_tail("airflow-worker")
    finally:
        deployment.stop()
    stray = deployment.stray_processes()
    assert not stray, f"processes left running: {[(p.pid, p.name()) for p in stray]}"
    print(f"\nCelery integration test wall time: {time.monotonic() - started:.0f}s")


def trigger_and_wait(client: httpx.Client, deployment: LocalDeployment, dag_id: str, conf: dict) -> dict:
    wait_for(
        f"{dag_id} to be parsed",
        lambda: client.get(f"/api/v2/dags/{dag_id}").status_code == 200,
        STARTUP_TIMEOUT,
        deployment,
    )
    # Unpausing a scheduled DAG makes the scheduler create the run of its latest
    # interval at once (catchup=False still runs the last one), and that run
    # would need the live APIs. Triggering *that* interval ourselves, with our
    # conf, leaves the scheduler nothing to add: it skips intervals that have a run.
    dag = client.get(f"/api/v2/dags/{dag_id}").json()
    body = {"logical_date": dag["next_dagrun_logical_date"], "conf": conf}
    if dag["next_dagrun_logical_date"]:
        body.update(
            data_interval_start=dag["next_dagrun_data_interval_start"],
            data_interval_end=dag["next_dagrun_data_interval_end"],
        )
    response = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).status_code == 200

    def finished():
        state = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        return state if state["state"] in ("success", "failed") else None

    run = wait_for(f"{dag_id} run {run_id}", finished, RUN_TIMEOUT, deployment, interval=3)
    client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": True})
    if run["state"] != "success":
        tis = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        task_logs = "\n".join(
            path.read_text(errors="replace")[-3000:] for path in (deployment.airflow_home / "logs").rglob("*.log")
        )
        raise AssertionError(f"{dag_id} run {run['state']}: {tis}\n{task_logs}\n{deployment.all_logs()}")
    return run
