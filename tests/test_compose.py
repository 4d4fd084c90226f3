"""docker-compose.yml, Dockerfile, .env.example and `make env`, checked without Docker.

The compose file is validated against the compose-spec JSON schema (the
copy vendored by check-jsonschema) after Compose-style interpolation, then
against what this deployment needs: the CeleryExecutor topology, health
checks and start order, mounts, and secrets that have no default and stop
`docker compose` when missing.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from integration_support import (
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    interpolate,
    load_compose,
    parse_env_file,
    passthrough_variables,
    raw_compose,
    referenced_variables,
    secret_variables,
    strings,
)

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
ALL_SERVICES = {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES}


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_env = _load_script("make_env")
airflow_init = _load_script("airflow_init")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """What `make env` would write, and nothing else."""
    return make_env.generate(uid=1000)


@pytest.fixture(scope="module")
def compose(env) -> dict:
    return load_compose(env)


def service_env(compose: dict, name: str) -> dict:
    return compose["services"][name]["environment"]


# --- schema ----------------------------------------------------------------------


def compose_spec_validator():
    pytest.importorskip(
        "check_jsonschema", reason="check-jsonschema ships the compose-spec schema; install requirements-dev.txt"
    )
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_is_valid_against_the_compose_spec_schema(compose):
    errors = sorted(compose_spec_validator().iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("breakage", ["typo_key", "bad_condition", "bad_healthcheck"])
def test_schema_validation_catches_broken_files(compose, breakage):
    # Control: the validator really rejects what `docker compose config` would.
    broken = copy.deepcopy(compose)
    worker = broken["services"]["airflow-worker"]
    if breakage == "typo_key":
        worker["helthcheck"] = worker.pop("healthcheck")
    elif breakage == "bad_condition":
        worker["depends_on"]["airflow-init"]["condition"] = "service_finished"
    else:
        worker["healthcheck"]["test"] = {"CMD": "true"}
    assert list(compose_spec_validator().iter_errors(broken))


# --- topology ----------------------------------------------------------------------


def test_services_and_their_commands(compose):
    services = {name: s for name, s in compose["services"].items() if not s.get("profiles")}
    assert set(services) == ALL_SERVICES
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
    init_script = "\n".join(services["airflow-init"]["command"])
    assert "scripts/airflow_init.py" in init_script
    assert (ROOT / "scripts" / "airflow_init.py").is_file()


def test_common_airflow_environment(compose):
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env = service_env(compose, name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
        execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert (execution.hostname, execution.path) == ("airflow-apiserver", "/execution/")
    apiserver = compose["services"]["airflow-apiserver"]
    # The workers' execution API URL, the published port and the health check agree on one port.
    container_port = apiserver["ports"][0].rsplit(":", 1)[1]
    assert str(execution.port) == container_port
    assert f"localhost:{container_port}/" in " ".join(apiserver["healthcheck"]["test"])


def test_start_order_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
    init = services["airflow-init"]["depends_on"]
    assert {init["postgres"]["condition"], init["redis"]["condition"]} == {"service_healthy"}
    # Workers run tasks through the execution API: no point starting before it answers.
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name == "airflow-init":
            assert service["restart"] == "no"
            continue
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) >= 2, name
        assert check["retries"] >= 3 and check["interval"].endswith("s"), name
        assert service["restart"] == "always", name
    worker_check = compose["services"]["airflow-worker"]["healthcheck"]["test"][1]
    # $$ in the file reaches the container's shell as a single $.
    assert '"celery@${HOSTNAME}"' in worker_check


def test_workers_can_be_scaled(compose):
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    for name in ("postgres", "redis"):
        assert "ports" not in compose["services"][name], f"{name} must not be published to the host"


def test_dags_and_data_are_mounted_but_the_library_is_the_installed_wheel(compose):
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        service = compose["services"][name]
        mounts = {volume.split(":")[1]: volume.split(":") for volume in service["volumes"]}
        env = service["environment"]
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]][0] == "./dags"
        for code in ("/opt/airflow/dags", "/opt/airflow/plugins"):
            assert mounts[code][-1] == "ro", f"{name}: code mounted writable at {code}"
        # Runs are pinned to the library the image installed: no checkout of etl/ or
        # expectations/ mounted over it, no PYTHONPATH putting one ahead of it.
        sources = {volume.split(":")[0] for volume in service["volumes"]}
        assert not sources & {"./etl", "./expectations", "."}, f"{name} mounts library code"
        assert "PYTHONPATH" not in env, name
        assert env["ETL_LANDING_URI"] in mounts and env["ETL_WAREHOUSE_URI"] in mounts
    for source in ("dags", "plugins"):
        assert (ROOT / source).is_dir()


def test_storage_uris_are_configurable(env):
    s3 = load_compose({**env, "ETL_LANDING_URI": "s3://bucket/landing", "ETL_WAREHOUSE_URI": "s3://bucket/wh"})
    worker_env = service_env(s3, "airflow-worker")
    assert (worker_env["ETL_LANDING_URI"], worker_env["ETL_WAREHOUSE_URI"]) == ("s3://bucket/landing", "s3://bucket/wh")
    # Credentials are passed on only when set, never defaulted.
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= passthrough_variables()
    assert worker_env["AWS_SECRET_ACCESS_KEY"] is None


# --- secrets -----------------------------------------------------------------------


def test_the_required_variables_are_exactly_the_secrets():
    assert secret_variables() == set(make_env.SECRETS)


def test_compose_refuses_to_start_with_no_env_at_all():
    with pytest.raises(InterpolationError) as failure:
        load_compose({})
    assert failure.value.variable in make_env.SECRETS
    assert "make env" in str(failure.value)


@pytest.mark.parametrize("missing", sorted(make_env.SECRETS))
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_each_secret_is_required(env, missing, how):
    partial = dict(env)
    if how == "unset":
        del partial[missing]
    else:
        partial[missing] = ""
    with pytest.raises(InterpolationError) as failure:
        load_compose(partial)
    assert failure.value.variable == missing
    assert f"set {missing} in .env" in str(failure.value)


def test_every_use_of_a_secret_is_required(env):
    # Not just one occurrence: a `${POSTGRES_PASSWORD:-airflow}` anywhere would be a default password.
    uses = 0
    for text in strings(raw_compose()):
        for name in make_env.SECRETS:
            if re.search(rf"\$\{{{name}\b", text.replace("$$", "")):
                uses += 1
                with pytest.raises(InterpolationError) as failure:
                    interpolate(text, {k: v for k, v in env.items() if k != name})
                assert failure.value.variable == name, text
    assert uses >= len(make_env.SECRETS)


def test_env_example_alone_does_not_start_compose():
    with pytest.raises(InterpolationError):
        load_compose(parse_env_file(ENV_EXAMPLE))


def test_secrets_reach_the_components_unchanged(compose, env):
    for name in AIRFLOW_SERVICES:
        service = service_env(compose, name)
        assert service["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW_FERNET_KEY"]
        assert service["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW_JWT_SECRET"]
        assert service["AIRFLOW__API__SECRET_KEY"] == env["AIRFLOW_API_SECRET_KEY"]
        assert urlsplit(service["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).password == env["POSTGRES_PASSWORD"]
        assert urlsplit(service["AIRFLOW__CELERY__BROKER_URL"]).password == env["REDIS_PASSWORD"]
        # Only airflow-init (and the API server, through the file it writes) knows the admin password.
        assert env["AIRFLOW_ADMIN_PASSWORD"] not in service.values(), name
    assert service_env(compose, "airflow-init")["AIRFLOW_ADMIN_PASSWORD"] == env["AIRFLOW_ADMIN_PASSWORD"]
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert compose["services"]["redis"]["environment"]["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]


def test_no_literal_secret_in_the_file():
    # Interpolate with markers: every secret-looking value and every password
    # inside a URL must be one of them, i.e. come from a required variable.
    markers = {name: f"marker{i}{name.lower()}" for i, name in enumerate(make_env.SECRETS)}
    compose = load_compose(markers)
    secretish = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$|_AUTH$")
    urls = 0
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secretish.search(key) and not key.endswith("_FILE") and value is not None:
                assert value in markers.values(), f"{name}: {key} is not a required variable"
            for url in re.findall(r"[a-z][a-z0-9+]*://\S+", str(value or "")):
                urls += 1
                password = urlsplit(url).password
                assert password is None or password in markers.values(), f"{name}: literal password in {key}"
    assert urls >= 3
    assert not re.search(r"PASSWORD|SECRET|FERNET", (ROOT / "Dockerfile").read_text())


def test_env_example_documents_every_variable_without_values():
    text = ENV_EXAMPLE.read_text()
    documented = dict(re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))
    assert set(documented) == referenced_variables() | passthrough_variables()
    assert all(value == "" for value in documented.values()), "the example must hold no values"
    for name in documented:  # each has a comment above it (or shares its neighbour's)
        assert re.search(rf"(^#.*\n)(#?[A-Z_0-9]+=\n)*#?{name}=", text, re.M), name


# --- make env ----------------------------------------------------------------------


def run_make_env(out):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_env.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_env_writes_strong_private_secrets_that_compose_accepts(tmp_path):
    out = tmp_path / ".env"
    result = run_make_env(out)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = parse_env_file(out)
    assert set(values) == set(make_env.SECRETS) | {"AIRFLOW_UID"}
    assert values["AIRFLOW_UID"] == str(os.getuid())
    secrets_written = [values[name] for name in make_env.SECRETS]
    assert len(set(secrets_written)) == len(secrets_written), "secrets must be independent"
    for name in make_env.SECRETS:
        assert len(values[name]) >= 32, name
        assert re.fullmatch(r"[A-Za-z0-9_\-=]+", values[name]), f"{name} is not URL-safe"
    from cryptography.fernet import Fernet

    assert (
        Fernet(values["AIRFLOW_FERNET_KEY"].encode()).decrypt(
            Fernet(values["AIRFLOW_FERNET_KEY"].encode()).encrypt(b"x")
        )
        == b"x"
    )
    compose = load_compose(values)
    assert service_env(compose, "airflow-worker")["AIRFLOW__CORE__FERNET_KEY"] == values["AIRFLOW_FERNET_KEY"]
    # A second run makes different secrets.
    again = tmp_path / "second.env"
    assert run_make_env(again).returncode == 0
    assert parse_env_file(again)["POSTGRES_PASSWORD"] != values["POSTGRES_PASSWORD"]


def test_make_env_refuses_to_overwrite(tmp_path):
    out = tmp_path / ".env"
    out.write_text("POSTGRES_PASSWORD=in-use\n")
    result = run_make_env(out)
    assert result.returncode == 1
    assert "already exists" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert out.read_text() == "POSTGRES_PASSWORD=in-use\n"


def test_make_env_reports_an_unwritable_place(tmp_path):
    result = run_make_env(tmp_path / "no-such-dir" / ".env")
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr


# --- airflow-init's bad input (the good path runs in test_integration_celery.py) ----


def run_init(**env):
    base = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "airflow_init.py")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, "AIRFLOW_ADMIN_PASSWORD must be set"),
        ({"AIRFLOW_ADMIN_PASSWORD": "short"}, "at least 12 characters"),
        ({"AIRFLOW_ADMIN_PASSWORD": "x" * 20, "AIRFLOW_ADMIN_USERNAME": "root"}, "'root' is not in"),
        (
            {"AIRFLOW_ADMIN_PASSWORD": "x" * 20, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": ""},
            "PASSWORDS_FILE is not set",
        ),
        ({"AIRFLOW_ADMIN_PASSWORD": "x" * 20, "ETL_WRITER_POOL_SLOTS": "0"}, "positive integer"),
    ],
)
def test_airflow_init_rejects_bad_configuration_in_one_line(tmp_path, overrides, message):
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "pw.json"),
        "AIRFLOW_HOME": str(tmp_path / "home"),
        **overrides,
    }
    result = run_init(**env)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "pw.json").exists()


def test_passwords_file_is_merged_private_and_rejects_garbage(tmp_path):
    path = tmp_path / "auth" / "passwords.json"
    airflow_init.write_passwords_file(path, "admin", "first-password")
    path.write_text(json.dumps({"admin": "first-password", "viewer": "kept"}))
    airflow_init.write_passwords_file(path, "admin", "rotated-password")
    assert json.loads(path.read_text()) == {"admin": "rotated-password", "viewer": "kept"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("{not json")
    with pytest.raises(airflow_init.InitError, match="not valid JSON"):
        airflow_init.write_passwords_file(path, "admin", "x" * 20)
    assert [p.name for p in path.parent.iterdir()] == ["passwords.json"]  # no temp file left


# --- Dockerfile ----------------------------------------------------------------------


def test_dockerfile_extends_the_pinned_airflow_image_with_the_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin, "requirements.txt pins apache-airflow"
    pinned = pin.group(1)
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert len(set(bases)) == 1, "the wheel is built on the image it is installed in"
    base = re.fullmatch(r"apache/airflow:(\S+)-python(\S+)", bases[-1])
    assert base and base.group(1) == pinned, "the image's Airflow must be the one requirements.txt pins"
    assert base.group(2) == f"{sys.version_info.major}.{sys.version_info.minor}"
    pip_install = re.search(r"^RUN pip install(?:\\\n|[^\n])*", dockerfile, re.M)
    assert pip_install, "the Dockerfile installs with pip"
    install = pip_install.group(0)
    assert (
        "-r /opt/airflow/project/requirements.txt" in install and "-c /opt/airflow/project/constraints.txt" in install
    )
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] == "airflow", "the image must not end as root"
    for source in re.findall(r"^COPY (?!.*--from=)(?:--\S+ )*(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"


def test_dockerfile_installs_the_library_as_its_wheel_only():
    """The image runs the wheel of pyproject.toml (built in the first stage), never etl/ as a source folder."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    build, image = re.split(r"^FROM .*$", dockerfile, flags=re.M)[1:]
    assert re.search(r"pip wheel (?:\S+ )*--no-deps", build)
    for needed in ("pyproject.toml", "README.md", "requirements.txt", "etl", "expectations"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", build, re.M), f"the wheel stage lacks {needed}"
    assert re.search(r"^COPY --from=wheel ", image, re.M)
    install = re.search(r"^RUN pip install[^\n]*etl_followup-\*\.whl", image, re.M)
    assert install and "--no-deps" in install.group(0)
    copied = " ".join(re.findall(r"^COPY (.*)$", image, re.M))
    assert not re.search(r"(^|\s)(etl|expectations)(\s|/)", copied), "the image copies library source"
    assert not re.search(r"^ENV .*PYTHONPATH", dockerfile, re.M)
    # The suites reach the build context (.dockerignore must not drop them).
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & {"etl", "expectations", "pyproject.toml", "README.md", "requirements-dev.txt"}


def test_dockerignore_keeps_secrets_and_data_out_of_the_build_context():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "landing", "warehouse", ".git"} <= ignored


# --- the resolver itself follows Compose's rules ------------------------------------


@pytest.mark.parametrize(
    "text, env, expected",
    [
        ("$$HOME and $${X}", {}, "$HOME and ${X}"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+set}", {"A": "1"}, "set"),
        ("${A:+set}", {"A": ""}, ""),
        ("${A?gone}", {"A": ""}, ""),
        ("${A:-${B:-inner}}/x", {}, "inner/x"),
        ("$A-$B", {"A": "1", "B": "2"}, "1-2"),
        ("cost $5", {}, "cost $5"),
    ],
)
def test_interpolation_follows_compose_rules(text, env, expected):
    assert interpolate(text, env) == expected


def test_interpolation_errors():
    with pytest.raises(InterpolationError, match="A is missing a value: say why"):
        interpolate("x${A:?say why}", {})
    with pytest.raises(InterpolationError):
        interpolate("${A?unset}", {})
    with pytest.raises(ValueError, match="unclosed"):
        interpolate("${A", {})
    with pytest.raises(ValueError, match="invalid interpolation"):
        interpolate("${A*b}", {"A": "1"})


def test_the_s3_profile_runs_the_store_the_tests_use_and_wires_the_connection(compose):
    store = compose["services"]["object-store"]
    assert store["profiles"] == ["s3"]
    assert store["image"].startswith("chrislusf/seaweedfs:")
    script = "\n".join(store["command"])
    assert "weed mini" in script and "-ip.bind=0.0.0.0" in script and "-s3.config=/tmp/s3.json" in script
    assert "exit 1" in script  # no credentials: the store refuses to start rather than run open
    assert "healthcheck" in store
    for name in AIRFLOW_SERVICES:  # every Airflow component passes the Connection on when .env sets it
        assert "AIRFLOW_CONN_ETL_OBJECT_STORE" in service_env(compose, name)
