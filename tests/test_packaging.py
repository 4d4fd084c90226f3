"""The library as a package: pyproject.toml, the wheel the image installs, the console script, `make env`.

The wheel is built the way the Dockerfile's first stage builds it — from
exactly the files that stage copies, with ``pip wheel --no-deps`` — so a
file missing from the image's build shows up here, without Docker. It must
hold every module, the GX suites (package data ``etl.expectations``, from
the top-level ``expectations/``) and any other file the library reads at
run time; installed into a fresh virtualenv outside the checkout, its
console script runs a pipeline that validates with those suites.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _wheel_stage_sources() -> list[str]:
    """What the Dockerfile's wheel stage copies from the build context."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = re.split(r"^FROM .*$", dockerfile, flags=re.M)[1]
    sources = []
    for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", stage, re.M):
        sources += line.split()
    return sources


def _no_pythonpath() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("wheel_src")
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for source in _wheel_stage_sources():
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, src / source, ignore=ignored)
        else:
            shutil.copy2(path, src / source)
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_no_pythonpath(),
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = list(dist.glob("etl_followup-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _runtime_files() -> set[str]:
    """Files of the library (etl/ and the suites) that are not Python modules: read at run time."""
    files = {f"etl/expectations/{p.name}" for p in (ROOT / "expectations").iterdir() if p.is_file()}
    files |= {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "etl").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".py", ".pyc"}
    }
    return files


def test_the_wheel_holds_every_module_the_suites_and_runtime_data(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "etl").rglob("*.py")}
    assert modules and modules <= names, sorted(modules - names)
    suites = {f"etl/expectations/{p.name}" for p in (ROOT / "expectations").glob("*.json")}
    assert len(suites) >= 10 and suites <= names, sorted(suites - names)
    assert "etl/expectations/__init__.py" in names
    assert _runtime_files() <= names, sorted(_runtime_files() - names)
    # Nothing outside the library: no tests, DAGs, scripts or a stray top-level expectations/.
    assert {n.split("/")[0] for n in names} == {"etl", dist_info}
    assert re.search(r"^\[console_scripts\]\s*\netl = etl\.cli:main$", entry_points, re.M)
    # The dependencies are requirements.txt itself (one list, no copy to drift).
    pinned = [re.sub(r"\s*#.*", "", line).strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requires = metadata.get_all("Requires-Dist")
    assert requires is not None, "the wheel declares its dependencies"
    assert requires[: len([p for p in pinned if p])] == [p for p in pinned if p]
    from etl import __version__

    assert metadata["Version"] == __version__ and metadata["Requires-Python"] == ">=3.11"


@pytest.mark.slow
def test_the_installed_wheel_runs_a_pipeline_outside_the_checkout(wheel, tmp_path):
    """A fresh venv with only the wheel (the pins come from the project's venv, as the image's come from pip)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies: the project's venv's site-packages, after the wheel's own (a plain path entry, so the
    # editable install's finder in there is not loaded: only the wheel can provide `etl`).
    Path(site, "zz_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _no_pythonpath() | {"GX_ANALYTICS_ENABLED": "false"}

    def etl(*args):
        return subprocess.run(
            [str(venv / "bin" / "etl"), *args], capture_output=True, text=True, cwd=work, env=env, timeout=600
        )

    where = subprocess.run(
        [
            str(python),
            "-c",
            "import etl, etl.expectation_suites as v; print(etl.__file__); print(v.suite_path('population'))",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module, suite = where.stdout.split()
    assert module.startswith(site) and suite.startswith(site), where.stdout
    helped = etl("--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: etl ")
    assert etl("--version").stdout.strip().startswith("etl ")
    assert (
        etl("sample", "--out", "landing", "--years", "2024-2024", "--units", "1", "--unit-months", "0").returncode == 0
    )
    run = etl(
        "run",
        "reference",
        "--landing",
        "landing",
        "--warehouse",
        "warehouse",
        "--kolada-kpis",
        "",
        "--offline-snapshot",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "dim_region: published, 21 in = 21 loaded + 0 quarantined" in run.stdout
    assert (work / "warehouse" / "_validation" / "dim_region").is_dir()  # the suite from the wheel ran


def test_the_console_script_of_the_project_venv_is_python_m_etl(tmp_path):
    """`make setup` installs the checkout editable: `etl` runs from any folder, without PYTHONPATH."""
    script = VENV_BIN / "etl"
    assert script.exists(), "no console script: run `make setup` (pip install -e .)"
    env = _no_pythonpath()
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert helped.returncode == 0, helped.stderr
    as_module = subprocess.run(
        [sys.executable, "-m", "etl", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert as_module.returncode == 0, as_module.stderr
    assert helped.stdout.replace("usage: etl", "usage: python -m etl", 1).split() == as_module.stdout.split()
    suites = subprocess.run(
        [sys.executable, "-c", "from etl import expectation_suites; print(expectation_suites.suites_dir())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert Path(suites.stdout.strip()) == ROOT / "expectations"  # editable: the checkout's suites, as package data


def test_the_library_finds_no_file_by_a_path_relative_to_its_source():
    """Files the library needs are package data (importlib.resources), never `__file__`/`parent.parent` paths."""
    offenders = []
    for path in (ROOT / "etl").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"__file__|parent\.parent", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders


# --------------------------------------------------------------------------- make env on a fresh clone


@pytest.mark.parametrize("python", ["python3.11", "no-such-python3.99"])
def test_make_env_works_on_a_fresh_clone_without_a_venv(tmp_path, python):
    """The documented first production command, in a copy with no .venv: the system's Python suffices."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "Makefile", clone / "Makefile")
    shutil.copy2(ROOT / "scripts" / "make_env.py", clone / "scripts" / "make_env.py")
    system_bins = [
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != VENV_BIN.resolve() and "pyenv" not in p
    ]
    if not shutil.which("python3", path=os.pathsep.join(system_bins)) or not shutil.which("make"):
        pytest.skip("needs make and a system python3")
    env = {k: v for k, v in _no_pythonpath().items() if k not in {"VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS"}}
    env["PATH"] = os.pathsep.join(system_bins)
    result = subprocess.run(
        ["make", "--no-print-directory", "env", f"PYTHON={python}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (clone / ".venv").exists()
    out = clone / ".env"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in out.read_text().splitlines() if line and not line.startswith("#"))
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_UID"} <= set(values)
    # A second `make env` refuses to overwrite the secrets of a running deployment.
    again = subprocess.run(
        ["make", "--no-print-directory", "env", f"PYTHON={python}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode != 0 and "already exists" in again.stderr


def test_make_env_needs_only_the_standard_library(tmp_path):
    """-S -I: no site-packages at all (no cryptography), as on a machine with nothing installed."""
    out = tmp_path / ".env"
    result = subprocess.run(
        [sys.executable, "-S", "-I", str(ROOT / "scripts" / "make_env.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = next(line.split("=", 1)[1] for line in out.read_text().splitlines() if line.startswith("AIRFLOW_FERNET_KEY="))
    from cryptography.fernet import Fernet

    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"
