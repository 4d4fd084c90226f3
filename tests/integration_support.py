"""Reading docker-compose.yml the way Docker Compose does, for tests that have no Docker.

Owns three things the compose tests and the Celery integration test share:

* :func:`interpolate` — Compose's variable substitution (``${VAR}``,
  ``${VAR:-default}``, ``${VAR:?error}``, ``${VAR:+alt}``, ``$$``), so a test
  can prove that a missing secret stops ``docker compose`` before anything
  starts;
* :func:`load_compose` — the file parsed with YAML anchors and merge keys
  applied, then interpolated from a given environment (never ``os.environ``
  unless asked: a developer's shell must not make a test pass);
* :func:`secret_variables` — the variables the file *requires* (``:?``), which
  are exactly the secrets, since nothing else may be required.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    """A required variable is missing (Compose refuses to start) or the syntax is broken."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"required variable {variable} is missing a value: {message}")
        self.variable = variable


def _braced_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose ``{`` is at ``start``, allowing nesting."""
    depth, i = 0, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed '${{' in {text!r}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables in one string with Compose's rules (empty counts as unset for ``:`` forms)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _braced_end(text, i + 1)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
            continue
        match = _NAME.match(text, i + 1)
        if match:
            out.append(env.get(match.group(0), ""))
            i = match.end()
            continue
        out.append("$")
        i += 1
    return "".join(out)


def _expand(body: str, env: Mapping[str, str]) -> str:
    match = _NAME.match(body)
    if not match:
        raise ValueError(f"invalid interpolation '${{{body}}}'")
    name, rest = match.group(0), body[match.end() :]
    value = env.get(name)
    if not rest:
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise ValueError(f"invalid interpolation '${{{body}}}'")
    if value is None or (op.startswith(":") and value == ""):  # unset (with the colon: or empty)
        if op.endswith("-"):
            return interpolate(arg, env)
        if op.endswith("?"):
            raise InterpolationError(name, interpolate(arg, env))
        return ""
    return interpolate(arg, env) if op.endswith("+") else value  # '+': the alternative when set


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(value, env) for value in node]
    return node


def raw_compose(path: Path = COMPOSE_FILE) -> dict:
    """The file as YAML (anchors and ``<<`` merge keys applied), not yet interpolated."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict:
    """The file as Compose sees it after interpolation; raises InterpolationError like Compose would."""
    return _walk(raw_compose(path), env)


def strings(node: Any):
    """Every string value in a parsed YAML tree (keys excluded: Compose interpolates values)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def secret_variables(path: Path = COMPOSE_FILE) -> set[str]:
    """Variables written ``${VAR:?message}`` in the file's values (comments don't count)."""
    found: set[str] = set()
    for text in strings(raw_compose(path)):
        found |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text.replace("$$", "")))
    return found


def referenced_variables(path: Path = COMPOSE_FILE) -> set[str]:
    """Every variable the file interpolates (``$$`` escapes are for the container's shell, not Compose)."""
    found: set[str] = set()
    for text in strings(raw_compose(path)):
        text = text.replace("$$", "")
        found |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
        found |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    return found


def passthrough_variables(path: Path = COMPOSE_FILE) -> set[str]:
    """Environment entries with no value: Compose passes them on from .env/the shell only when set."""
    found: set[str] = set()
    compose = raw_compose(path)
    for service in compose.get("services", {}).values():
        env = service.get("environment") or {}
        if isinstance(env, dict):
            found |= {key for key, value in env.items() if value is None}
    return found


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blank lines skipped; no quoting used by our files)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: line without '=': {line!r}")
        values[key.strip()] = value.strip()
    return values


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- real processes and a scratch PostgreSQL database ---------------------------------
# Shared by integration tests and benchmarks/bench_backfill.py (which starts a real
# scheduler): both need components in process groups of their own that are always
# stopped, and a database nobody else uses, always dropped.


class ProcessGroups:
    """Long-running commands, each leading its own session (so its children share its group).

    ``marker`` is an environment (key, value) every started command carries;
    processes that left their group (daemonised task runners) are still found
    by it and killed in :meth:`stop`.
    """

    def __init__(self, logs: Path, marker: tuple[str, str]):
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.marker = marker
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        import subprocess

        env = dict(env)
        env[self.marker[0]] = self.marker[1]
        with open(self.logs / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def all_logs(self, lines: int = 40) -> str:
        return "\n".join(self.log_tail(name, lines) for name in self.processes)

    def wait_for(
        self, what: str, check, *, timeout: float, interval: float, errors: tuple = (OSError,), log_lines: int = 40
    ):
        """``check()``'s first truthy result, polled every ``interval`` s; fails naming ``what``, the last
        error (one of ``errors``, e.g. a refused connection while a server starts) and the logs when a
        process dies or ``timeout`` s pass."""
        import time

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                result = check()
            except errors as exc:
                result, last = None, exc
            if result:
                return result
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})\n" + self.all_logs(log_lines)
        )

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.log_tail(name, 80)}")

    def stray_processes(self) -> list:
        """Live processes in our groups, or anywhere carrying our marker."""
        import os

        import psutil

        groups = {process.pid for process in self.processes.values()}
        key, value = self.marker
        stray = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) in groups or proc.environ().get(key) == value:
                    if proc.status() != psutil.STATUS_ZOMBIE:
                        stray.append(proc)
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        return stray

    def stop(self, grace: float = 45) -> None:
        """SIGTERM every group, SIGKILL what is left after ``grace`` seconds, then reap."""
        import os
        import signal
        import subprocess
        import time

        import psutil

        gone = (ProcessLookupError, PermissionError, psutil.Error)
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except gone:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.stray_processes():
            time.sleep(0.5)
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except gone:
                pass
        for proc in self.stray_processes():  # escaped their group: still ours, by the marker
            try:
                proc.kill()
            except gone:
                pass
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


class ScratchDatabase:
    """A PostgreSQL database with a unique name, created on enter and dropped (forcibly) on exit.

    ``admin`` is psycopg2 connect keywords for a role that may create databases
    (e.g. the local ``postgres`` superuser with trust authentication).
    """

    def __init__(self, admin: Mapping[str, Any], prefix: str = "etl_scratch"):
        import uuid

        self.admin = dict(admin)
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        user, host, port = self.admin.get("user", "postgres"), self.admin["host"], self.admin.get("port", 5432)
        password = f":{self.admin['password']}" if self.admin.get("password") else ""
        return f"{driver}://{user}{password}@{host}:{port}/{self.name}"

    def _execute(self, statement) -> None:
        import psycopg2

        conn = psycopg2.connect(**{**self.admin, "dbname": self.admin.get("dbname", "postgres")})
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def __enter__(self) -> ScratchDatabase:
        from psycopg2 import sql

        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def __exit__(self, *exc) -> None:
        from psycopg2 import sql

        self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


# The local PostgreSQL the integration tests run Airflow's metadata on (trust auth; ETL_TEST_PG_USER to change).
PG = {"host": "127.0.0.1", "port": 5432, "user": os.environ.get("ETL_TEST_PG_USER", "postgres"), "dbname": "postgres"}


def postgres_or_skip(pg: Mapping[str, Any] = PG) -> None:
    """Skip the test when PostgreSQL at ``pg`` does not answer — fail instead under ETL_REQUIRE_SERVICES=1 (CI)."""
    import psycopg2
    import pytest

    try:
        psycopg2.connect(connect_timeout=5, **pg).close()
    except psycopg2.Error as exc:
        message = f"PostgreSQL at {pg['host']}:{pg['port']} unreachable ({str(exc).strip()})"
        if os.environ.get("ETL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}, and ETL_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(message)
