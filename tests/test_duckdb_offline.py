"""Issue 24: the analysts' DuckDB catalogue on an ``s3://`` warehouse, with nothing downloaded.

DuckDB reads ``s3://`` through its httpfs extension, which it would
otherwise download from its extension repository on the internet (a
production worker has none): the catalogue build failed there and ``run
all`` exited 1. The extension now comes from the ``duckdb-extension-httpfs``
wheel, built for the one DuckDB version the library and the CLI are pinned
to, and is loaded by its path with DuckDB's auto-install and auto-load off
(etl/marts/access.py).

The end-to-end test runs ``python -m etl run all`` on SeaweedFS with DuckDB's
extension repositories pointed at a local listener that counts connections
(a positive control first shows that a download would reach it), an empty
HOME (no extension cached in ``~/.duckdb``) and the HTTP proxies pointing at
the same listener (loopback excepted: ``NO_PROXY``); then an analyst, with the store's read-only key, queries the
S3 tables with the project's DuckDB CLI and from Python.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import cast

import duckdb
import pytest

from etl.errors import ConfigError, EtlError
from etl.marts import access

ROOT = Path(__file__).resolve().parent.parent
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


# --------------------------------------------------------------------------- fast: pins, SQL, offline settings


def _pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^(duckdb[a-z-]*)==([^\s#]+)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_duckdb_the_cli_and_the_httpfs_extension_are_pinned_to_one_version():
    """A C++ extension loads only into the DuckDB version it was built for: library, CLI and httpfs move together."""
    for name in ("requirements.txt", "constraints.txt"):
        pins = _pins(ROOT / name)
        assert {k: pins.get(k) for k in ("duckdb", "duckdb-cli", "duckdb-extension-httpfs")} == dict.fromkeys(
            ("duckdb", "duckdb-cli", "duckdb-extension-httpfs"), duckdb.__version__
        ), name
    cli = subprocess.run([str(DUCKDB_CLI), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert cli.stdout.split()[0] == f"v{duckdb.__version__}"
    with duckdb.connect(config=dict(access.OFFLINE)) as con:
        assert Path(access.httpfs_extension(access.duckdb_version(con))).is_file()


def test_a_missing_extension_build_is_a_configuration_error_naming_the_package():
    with pytest.raises(ConfigError, match=r"install duckdb-extension-httpfs==9\.9\.9"):
        access.httpfs_extension("v9.9.9")


def test_an_offline_connection_refuses_s3_instead_of_downloading_httpfs(tmp_path, monkeypatch):
    """With auto-install/auto-load off, DuckDB says the extension is not loaded; it does not try the network."""
    monkeypatch.setenv("HOME", str(tmp_path))
    with duckdb.connect(config={**access.OFFLINE, "custom_extension_repository": "http://127.0.0.1:9"}) as con:
        with pytest.raises(duckdb.Error, match="httpfs"):
            con.execute("select * from read_parquet('s3://bucket/x.parquet')")
    assert not (tmp_path / ".duckdb").exists()


def test_the_secret_sql_for_the_cli_holds_no_credential_and_in_process_it_is_redacted_on_error():
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDSECRETLOOKING",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t/with'quote",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_REGION": "eu-north-1",
    }
    cli = access.s3_secret_sql("s3://bucket/wh/", env, credentials="getenv")
    assert "AKIDSECRETLOOKING" not in cli and "s3cr3t" not in cli
    assert "getenv('AWS_SECRET_ACCESS_KEY')" in cli
    assert "ENDPOINT '127.0.0.1:8333'" in cli and "USE_SSL false" in cli and "URL_STYLE 'path'" in cli
    assert "REGION 'eu-north-1'" in cli and "SCOPE 's3://bucket/wh'" in cli
    literal = access.s3_secret_sql("s3://bucket/wh", env, credentials="literal")
    assert "'s3cr3t/with''quote'" in literal
    aws = access.s3_secret_sql(
        "s3://bucket/wh", {"AWS_ENDPOINT_URL_S3": "https://minio.internal:9000"}, credentials="literal"
    )
    assert "ENDPOINT 'minio.internal:9000'" in aws and "USE_SSL true" in aws and "KEY_ID" not in aws
    assert "ENDPOINT" not in access.s3_secret_sql("s3://bucket/wh", {}, credentials="literal")  # AWS itself

    class Refusing:
        """A connection whose CREATE SECRET fails with DuckDB's habit of quoting the statement."""

        def __init__(self):
            self.con = duckdb.connect(config=dict(access.OFFLINE))

        def execute(self, sql):
            if sql.startswith("CREATE OR REPLACE TEMPORARY SECRET"):
                raise duckdb.ParserException(f"syntax error at or near ... LINE 1: {sql}")
            return self.con.execute(sql)

    refusing = Refusing()
    with pytest.raises(EtlError, match="could not take the object store's settings") as caught:
        # A stand-in for a connection: configure_s3 only calls its execute.
        access.configure_s3(cast(duckdb.DuckDBPyConnection, refusing), "s3://bucket/wh", env)
    assert "s3cr3t" not in str(caught.value) and caught.value.__cause__ is None
    # Loading the shipped extension worked, offline.
    assert refusing.con.execute(
        "select loaded from duckdb_extensions() where extension_name = 'httpfs'"
    ).fetchone() == (True,)


def test_init_sql_is_for_object_store_warehouses(tmp_path):
    with pytest.raises(ConfigError, match="local warehouse"):
        access.init_sql(str(tmp_path))


# --------------------------------------------------------------------------- end to end on SeaweedFS, offline


class Listener:
    """A TCP port on loopback that counts the connections it is offered and closes each: an extension
    repository that would notice any download attempt."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


# Every duckdb.connect of the process gets the listener as its extension repositories (a test hook,
# loaded as sitecustomize): a download of any extension would have to go there.
SITECUSTOMIZE = """
import os
import duckdb

_repository = os.environ["TEST_DUCKDB_REPOSITORY"]
_connect = duckdb.connect


def connect(*args, **kwargs):
    kwargs["config"] = {**(kwargs.get("config") or {}), "custom_extension_repository": _repository,
                        "autoinstall_extension_repository": _repository}
    return _connect(*args, **kwargs)


duckdb.connect = connect
"""


@pytest.fixture
def offline(tmp_path, s3_env):
    """An environment for subprocesses in which DuckDB can reach no extension repository but the listener."""
    listener = Listener()
    hooks, home = tmp_path / "hooks", tmp_path / "home"
    hooks.mkdir()
    home.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "HOME": str(home),  # no extension cached in ~/.duckdb
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
        "TEST_DUCKDB_REPOSITORY": listener.url,
        "ETL_LANDING_SETTLE_SECONDS": "0",
        # Any client that goes through a proxy (DuckDB's HTTP client reads HTTP_PROXY) reaches the listener too.
        **{
            name: listener.url
            for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")
        },
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    try:
        yield env, listener, home
    finally:
        listener.close()


@pytest.mark.integration
@pytest.mark.slow
def test_run_all_on_s3_builds_the_catalogue_offline_and_an_analyst_queries_it(offline, s3_env, tmp_path):
    from etl import publish

    env, listener, home = offline
    # Positive control: in this environment a download attempt reaches the listener (and fails).
    control_home = tmp_path / "control-home"
    control_home.mkdir()
    control = subprocess.run(
        [sys.executable, "-c", "import duckdb; duckdb.connect().execute('INSTALL httpfs')"],
        env={**env, "HOME": str(control_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert control.returncode != 0 and listener.connections >= 1, control.stderr
    listener.connections = 0

    landing, warehouse = tmp_path / "landing", s3_env.uri("offline")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "sample",
            "--out",
            str(landing),
            "--years",
            "2019-2019",
            "--units",
            "40",
            "--unit-months",
            "1",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "run",
            "all",
            "--offline-snapshot",
            "--landing",
            str(landing),
            "--warehouse",
            warehouse,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    assert "could not refresh the analysts' views" not in done.stderr  # every pipeline's refresh worked on S3
    assert f"duckdb: {warehouse}/followup.duckdb" in done.stdout
    assert listener.connections == 0  # nothing was fetched
    assert not (home / ".duckdb").exists()
    assert took < 300

    import fsspec

    catalogue = fsspec.filesystem("s3").cat_file(f"{warehouse}/followup.duckdb".removeprefix("s3://"))
    assert s3_env.secret_key.encode() not in catalogue and s3_env.access_key.encode() not in catalogue

    expected = {
        name: publish.read_table(warehouse, name).num_rows
        for name in (
            "dim_region",
            "population",
            "county_report",
            "county_initiative",
            "county_ehealth_service",
            "ehealth_adoption",
            "ehealth_adoption_national",
            "ehealth_unit_daily",
            "followup_region_year",
            "followup_national_year",
        )
    }
    expected["load_log"] = publish.read_load_log(warehouse).num_rows
    assert all(expected.values()), expected
    population = sum(publish.read_table(warehouse, "population").column("population").to_pylist())

    # The analyst: a read-only key, the init script (no credential in it), the project's DuckDB CLI.
    reader = {**env, "AWS_ACCESS_KEY_ID": s3_env.reader_key, "AWS_SECRET_ACCESS_KEY": s3_env.reader_secret}
    script = subprocess.run(
        [sys.executable, "-m", "etl.marts.access", "--warehouse", warehouse],
        env=reader,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    assert s3_env.reader_secret not in script.stdout and s3_env.reader_key not in script.stdout
    init = tmp_path / "followup-s3.sql"
    # The test's own guard on top: were the script to let DuckDB download anything, it would reach the listener.
    init.write_text(
        f"SET custom_extension_repository = '{listener.url}';\n"
        f"SET autoinstall_extension_repository = '{listener.url}';\n" + script.stdout
    )
    query = " union all ".join(f"select '{name}', count(*) from {name}" for name in expected)
    query += " union all select 'sum(population)', sum(population) from population"
    cli = subprocess.run(
        [str(DUCKDB_CLI), "-init", str(init), "-csv", "-noheader", "-c", query],
        env=reader,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert cli.returncode == 0, cli.stderr
    got = dict(line.rsplit(",", 1) for line in cli.stdout.split())
    assert {k: int(v) for k, v in got.items()} == {**expected, "sum(population)": population}
    assert listener.connections == 0 and not (home / ".duckdb").exists()

    # From Python (access.connect), with the same read-only key and the same guard.
    code = (
        "import json, sys; from etl.marts import access; con = access.connect(sys.argv[1]); "
        "print(json.dumps(dict(con.execute(sys.argv[2]).fetchall())))"
    )
    py = subprocess.run(
        [sys.executable, "-c", code, warehouse, query], env=reader, capture_output=True, text=True, timeout=300
    )
    assert py.returncode == 0, py.stderr
    import json

    assert json.loads(py.stdout) == {**expected, "sum(population)": population}
    assert listener.connections == 0
