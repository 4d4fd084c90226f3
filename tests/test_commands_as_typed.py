"""Issue 25 §1: every command in the README, docs/, the demo's output and the sql/ headers works as typed.

As typed means: from the project folder after ``make demo``, in a new shell where nothing is activated. So
the commands are written ``.venv/bin/python -m etl …``, ``.venv/bin/duckdb …``, ``.venv/bin/airflow …``
(README, "Two commands"); a bare ``python -m etl`` is the system Python, without the project's libraries
(it ended in tracebacks), and a bare ``duckdb`` is not on PATH (exit 127).

What is extracted (:func:`documented`, :func:`demo_commands`):

- README.md and docs/*.md: each line of a fenced shell block, and each inline ``…`` span, that starts with
  ``.venv/bin/``, ``make ``, ``python -m etl``, ``duckdb `` or ``docker compose`` (after any ``VAR=value``);
- the ``-- Run:`` line of each sql/*.sql;
- the command lines the demo's summary prints (``scripts/demo.py``'s :func:`summary`, run on the warehouse
  built here), and any in the string literals of scripts/demo.py and scripts/demo_answers.py.

Every one must be runnable in a new shell (:data:`BARE`), and be either run here or skipped with its reason
in :data:`RULES`: a command that no rule matches fails, so a new command in the docs is run or said why not.
They run with ``bash -c``, from a demo-like folder built once per module (``.venv`` and ``sql`` linked to
the checkout's; ``landing/`` and ``warehouse/`` from the README's own ``sample`` and ``run`` lines on a small
sample, as other tests do), with PATH stripped of the venv and no ETL_/AIRFLOW/VIRTUAL_ENV variables: only
``ETL_LANDING_SETTLE_SECONDS=0`` (what ``make demo`` sets for its freshly written sample) and
``GX_ANALYTICS_ENABLED=false``.
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

COMMAND_START = (".venv/bin/", "make ", "python -m etl", "python3 -m etl", "duckdb ", "docker compose")
ASSIGNMENTS = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)+")  # `AIRFLOW__API__PORT=8081 make airflow`
# Not runnable in a new shell: the system Python has none of the libraries; duckdb is only in .venv/bin.
BARE = re.compile(r"(?:^|[\s;&|(`])(?:python3?(?:\.\d+)?\s+-m\s+etl\b|duckdb(?=\s|$))")
SHELL_FENCES = {"", "sh", "bash", "shell", "console"}

# The module fixture's demo: the README's `sample` and `run` lines on a small sample (one year, five units).
SENT = "{sent}"  # in a command run: the sample's Uppsala 2019 report, copied into the project folder
SAMPLE = ".venv/bin/python -m etl sample --out landing --years 2019-2019 --units 5 --unit-months 1"
RUN_ALL = ".venv/bin/python -m etl run all --landing landing --warehouse warehouse --offline-snapshot"
TODAY = '"$(date -u +%F)"'


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str  # as written, whitespace collapsed


@dataclass(frozen=True)
class Rule:
    """How a documented command is exercised: ``pattern`` (a full match on its text) → run ``run`` or skip."""

    pattern: str
    run: str | None  # the command line run (``{typed}``: the command as written); None: skipped
    why: str  # skipped: the reason; run: what it shows
    expect: tuple[str, ...] = ()  # in its output (stdout and stderr)
    code: int = 0
    stdin: str | None = None


AS_TYPED = "{typed}"
RULES: list[Rule] = [
    # ------------------------------------------------------------------ run (as typed, or with a placeholder filled)
    Rule(
        r"\.venv/bin/python -m etl sample --out landing( \[[^]]*\])*",
        SAMPLE,
        "the module's demo: the README's line on a small sample (2019, 5 units) instead of ten years",
        ("county_reports:",),
    ),
    Rule(
        r"\.venv/bin/python -m etl run \{[a-z,-]*\} --landing landing --warehouse warehouse( \[[^]]*\])*",
        RUN_ALL,
        "the module's demo: `run all` on it, offline (the recorded SCB and Kolada answers)",
        ("followup: published in",),
    ),
    Rule(
        r"\.venv/bin/python -m etl run (followup|ehealth-adoption)",
        AS_TYPED,
        "a second run: nothing new",
        ("nothing new",),
    ),
    Rule(
        r"\.venv/bin/python -m etl check (FILE…|arsrapport_2019_03_region-uppsala\.\w+)( \[--warehouse warehouse\])?",
        f".venv/bin/python -m etl check {SENT}",
        "FILE… = a sender's file in the project folder: the sample's Uppsala 2019 report (its format is the "
        "sample's; --warehouse warehouse is the default)",
        (": already published as it is",),
    ),
    Rule(
        r"\.venv/bin/python -m etl approve( \[.*\])?",
        ".venv/bin/python -m etl approve",
        "lists what is blocked (deciding needs a blocked delivery: the FILE form below)",
        ("0 delivery(ies) blocked",),
    ),
    Rule(
        r"\.venv/bin/python -m etl status --warehouse warehouse",
        AS_TYPED,
        "each table's rows, the last loads",
        ("dim_region", "blocked now: 0"),
    ),
    Rule(
        r'\.venv/bin/python -m etl report --as-of "\$\(date -u \+%F\)" --out then/',
        AS_TYPED,
        "today's report: the demo's tables were all published today",
        ("report: then/followup_report_as_of_",),
    ),
    Rule(
        r"\.venv/bin/python -m etl report --as-of DATE",
        f".venv/bin/python -m etl report --as-of {TODAY} --out then/",
        "DATE = today (UTC)",
        ("report: then/followup_report_as_of_",),
    ),
    Rule(
        r"\.venv/bin/python -m etl maintain --warehouse warehouse",
        AS_TYPED,
        "compact, checkpoint, vacuum (run last: it rewrites files the others read)",
        ("table(s) maintained",),
    ),
    Rule(r"\.venv/bin/python -m etl template --out ([\w.-]+\.xlsx)", AS_TYPED, "the blank template", ("wrote ",)),
    Rule(
        r"\.venv/bin/python -m etl docs",
        AS_TYPED,
        "docs/tables.md under the demo folder (tests/test_cli.py holds the checkout's current)",
        ("wrote docs/tables.md",),
    ),
    Rule(
        r"\.venv/bin/python -m etl",
        ".venv/bin/python -m etl --help",
        "the program named in prose: its --help",
        ("usage:",),
    ),
    Rule(r"\.venv/bin/etl --version", AS_TYPED, "the console script", ("etl ",)),
    Rule(r"\.venv/bin/etl", ".venv/bin/etl --help", "the console script named in prose: its --help", ("usage:",)),
    Rule(r"\.venv/bin/python -m etl\.marts\.summary", AS_TYPED, "the summary rules' tables", ("| samtliga |",)),
    # -box prints every row (the default layout shows 40), which the check below holds it to.
    Rule(
        r"\.venv/bin/duckdb -readonly -box warehouse/followup\.duckdb < (sql/\d\d_\w+\.sql)",
        AS_TYPED,
        "a follow-up question",
        ("┌",),
    ),
    Rule(
        r"\.venv/bin/duckdb -readonly -box warehouse/followup\.duckdb < sql/<file>",
        ".venv/bin/duckdb -readonly -box warehouse/followup.duckdb < sql/01_programme_offers_by_year.sql",
        "<file> = the first question (every sql/ file runs as its header says)",
        ("┌",),
    ),
    Rule(
        r"\.venv/bin/duckdb warehouse/followup\.duckdb",
        AS_TYPED,
        "the views, with the analyst guide's first query",
        ("followup_region_year",),
        stdin="select count(*) as followup_region_year from followup_region_year;",
    ),
    # ------------------------------------------------------------------ skipped, each with its reason
    Rule(r"\.venv/bin/((python -m etl|duckdb) …)?", None, "the general form, named in prose (README, Two commands)"),
    Rule(
        r"\.venv/bin/python -m etl sample",
        None,
        "the program named in prose without its required --out; the README's full line runs above",
    ),
    Rule(r"\.venv/bin/python -m etl check", None, "named in prose; the FILE forms run above"),
    Rule(
        r"\.venv/bin/python -m etl approve FILE --reason .*",
        None,
        "needs a blocked delivery; tests/test_approvals.py runs the approve line `status` prints",
    ),
    Rule(
        r"\.venv/bin/python -m etl run followup --warehouse <new place>",
        None,
        "a warehouse moved elsewhere (tests/test_followup_access.py moves one); `run followup` runs above",
    ),
    Rule(r"docker compose.*", None, "needs Docker (tests/test_integration_celery.py runs the compose services)"),
    Rule(
        r".*\bs3://.*|\.venv/bin/duckdb -init followup-s3\.sql",
        None,
        "needs an S3 store with credentials (tests/test_followup_access.py runs it on SeaweedFS)",
    ),
    Rule(
        r"(AIRFLOW_HOME=\S+ )?\.venv/bin/airflow .*",
        None,
        "needs the Airflow of `make airflow` with the DAGs serialised and a scheduler "
        "(tests/test_airflow_e2e.py, tests/test_unpause_all.py)",
    ),
    Rule(r"make demo", None, "what this module's demo folder stands for (minutes: Airflow and ten years of data)"),
    Rule(r"make (test|test-fast|lint)", None, "the test suite itself"),
    Rule(
        r"\.venv/bin/pre-commit install",
        None,
        "writes a hook into the checkout's .git; tests/test_code_quality.py proves the hooks are make lint's",
    ),
    Rule(r"make setup", None, "installs .venv, which this test runs from"),
    Rule(r"make bench", None, "minutes of benchmarks"),
    Rule(r"make lock", None, "re-resolves the pins from the network and rewrites constraints.txt"),
    Rule(r"make docs", None, "rewrites the checkout's docs/tables.md; `.venv/bin/python -m etl docs` runs above"),
    Rule(
        r"(AIRFLOW__API__PORT=\d+ )?make airflow",
        None,
        "starts Airflow standalone until Ctrl-C (tests/test_unpause_all.py runs it)",
    ),
    Rule(r"make env", None, "writes .env with new secrets into the checkout (tests/test_compose.py runs it)"),
    Rule(r"make clean", None, "destructive: removes .airflow, warehouse and landing"),
]


# --------------------------------------------------------------------------- extraction


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _starts_a_command(text: str) -> bool:
    return ASSIGNMENTS.sub("", text).startswith(COMMAND_START)


def markdown_commands(path: Path) -> list[Command]:
    """The commands of one Markdown file: fenced shell lines and inline spans that start like one."""
    text = path.read_text(encoding="utf-8")
    name = str(path.relative_to(ROOT))
    found: list[tuple[int, str]] = []
    prose = text
    for fence in re.finditer(r"^ *```([\w-]*)[^\n]*\n(.*?)^ *```", text, re.M | re.S):
        prose = prose[: fence.start()] + re.sub(r"[^\n]", " ", fence.group(0)) + prose[fence.end() :]
        if fence.group(1).lower() not in SHELL_FENCES:
            continue
        body_at = fence.start(2)
        logical, first = "", 0
        for match in re.finditer(r"[^\n]*\n?", fence.group(2)):
            raw = match.group(0).rstrip("\n")
            if not logical:
                first = body_at + match.start()
            logical += raw
            if raw.endswith("\\"):
                logical = logical[:-1] + " "
                continue
            line = re.split(r"\s#(?:\s|$)", logical, maxsplit=1)[0].strip()
            if line and _starts_a_command(line):
                found.append((first, line))
            logical = ""
    for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        words = " ".join(span.group(1).split())
        if _starts_a_command(words):
            found.append((span.start(), words))
    return [Command(f"{name}:{_line(text, at)}", " ".join(cmd.split())) for at, cmd in sorted(found)]


def sql_commands() -> list[Command]:
    found = []
    for path in sorted((ROOT / "sql").glob("*.sql")):
        lines = path.read_text(encoding="utf-8").splitlines()
        runs = [(n, line.split(":", 1)[1].strip()) for n, line in enumerate(lines, 1) if line.startswith("-- Run:")]
        assert runs, f"sql/{path.name} has no `-- Run:` line in its header"
        found += [Command(f"sql/{path.name}:{n}", cmd) for n, cmd in runs]
    return found


def documented() -> list[Command]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [c for path in docs for c in markdown_commands(path)] + sql_commands()


def script_literals(path: Path) -> list[Command]:
    """String literals (f-string parts included) of a script that hold a command: the branches a run may not reach."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for match in re.finditer(r"(?:\.venv/bin/\S+|python3? -m etl|\bduckdb )[^)\n]*", node.value):
                found.append(Command(f"{path.relative_to(ROOT)}:{node.lineno}", match.group(0).strip()))
    return found


def demo_commands(output: str) -> list[tuple[Command, str | None]]:
    """The commands the demo's summary printed, each with the query shown with it (its stdin), if any."""
    lines = output.splitlines()
    found: list[tuple[Command, str | None]] = []
    for n, line in enumerate(lines):
        match = re.search(r"(?:\.venv/bin/|(?<![\w/])python3? -m etl|(?<![\w/.-])duckdb )", line)
        if not match:
            continue
        text = line[match.start() :]
        stdin = None
        then = re.search(r"\s+\(then: (.*)\)$", text)
        if then:
            text, stdin = text[: then.start()], then.group(1) + ";"
        elif line.lstrip().startswith("-- "):  # the example query follows, up to its result
            query = []
            for following in lines[n + 1 :]:
                if not following.strip() or following.lstrip().startswith("┌"):
                    break
                query.append(following.strip())
            stdin = "\n".join(query)
        text = re.split(r"\s{2,}|\)$", text.strip())[0]
        found.append((Command(f"demo output line {n + 1}", text), stdin))
    return found


def rule_for(command: Command) -> Rule | None:
    return next((r for r in RULES if re.fullmatch(r.pattern, command.text)), None)


def run_line(rule: Rule, command: Command, sent: str) -> str:
    assert rule.run is not None
    return command.text if rule.run == AS_TYPED else rule.run.replace(SENT, sent)


# --------------------------------------------------------------------------- the demo folder


@dataclass
class Result:
    code: int
    out: str
    seconds: float


class Folder:
    """A demo-like project folder in tmp: commands run there with ``bash -c``, as in a new shell."""

    def __init__(self, path: Path):
        self.path = path
        self.results: dict[tuple[str, str | None], Result] = {}
        self.sent = ""  # the sender's file copied into the folder
        venv_bins = {str(ROOT / ".venv" / "bin"), str(Path(sys.executable).parent)}
        path_dirs = [
            d
            for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and d not in venv_bins and "/.venv/" not in d + "/"
        ]
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ETL_", "AIRFLOW", "VIRTUAL_ENV", "PYTHON", "CONDA"))
        }
        # What `make demo` sets for its freshly written sample (scripts/demo.py); no analytics calls home.
        self.env.update(PATH=os.pathsep.join(path_dirs), ETL_LANDING_SETTLE_SECONDS="0", GX_ANALYTICS_ENABLED="false")

    def run(self, line: str, stdin: str | None = None) -> Result:
        key = (line, stdin)
        if key not in self.results:
            started = time.monotonic()
            done = subprocess.run(
                ["bash", "-c", line],
                cwd=self.path,
                env=self.env,
                input=stdin or "",
                capture_output=True,
                text=True,
                timeout=600,
            )
            self.results[key] = Result(done.returncode, done.stdout + done.stderr, time.monotonic() - started)
        return self.results[key]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Folder:
    """The demo's folder on a small sample: every documented command that runs, run once (concurrently)."""
    path = tmp_path_factory.mktemp("project")
    (path / ".venv").symlink_to(ROOT / ".venv")
    (path / "sql").symlink_to(ROOT / "sql")
    demo = Folder(path)
    for line in (SAMPLE, RUN_ALL):
        result = demo.run(line)
        assert result.code == 0, f"{line}\n{result.out[-3000:]}"
    sent = min((path / "landing" / "county_reports").glob("arsrapport_2019_03_*"), key=lambda p: len(p.name))
    shutil.copy(sent, path / sent.name)
    demo.sent = sent.name
    todo: dict[tuple[str, str | None], Rule] = {}
    for command in documented():
        rule = rule_for(command)
        if rule is not None and rule.run is not None:
            todo.setdefault((run_line(rule, command, demo.sent), rule.stdin), rule)
    # The DuckDB CLI opens followup.duckdb read-write, holding its lock: one at a time, as an analyst runs them,
    # after the rest (three at once); maintain last, as it rewrites files the others read.
    one_by_one = [key for key in todo if key[0].startswith(".venv/bin/duckdb ")]
    last = [key for key in todo if "maintain" in key[0]]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda key: demo.run(*key), [key for key in todo if key not in one_by_one + last]))
    for key in one_by_one + last:
        demo.run(*key)
    return demo


# --------------------------------------------------------------------------- the tests

COMMANDS = documented()


def test_commands_are_found_where_expected():
    """The extraction itself: each source gives commands (a change of format must not silently find none)."""
    where = {c.where.split(":")[0] for c in COMMANDS}
    assert {
        "README.md",
        "docs/analyst-guide.md",
        "docs/county-report-guide.md",
        "docs/deployment.md",
        "docs/input-formats.md",
    } <= where
    assert len([c for c in COMMANDS if c.where.startswith("sql/")]) == len(list((ROOT / "sql").glob("*.sql")))
    texts = {c.text for c in COMMANDS}
    assert ".venv/bin/python -m etl status --warehouse warehouse" in texts
    assert any(t.startswith(".venv/bin/python -m etl approve FILE --reason") for t in texts)  # a span over lines


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text[:60]}" for c in COMMANDS])
def test_every_documented_command_runs_in_a_new_shell(command):
    if BARE.search(command.text):
        pytest.fail(
            f"{command.where}: `{command.text}` does not run in a new shell (no venv activated): "
            "write `.venv/bin/python -m etl …` / `.venv/bin/duckdb …`",
            pytrace=False,
        )
    if rule_for(command) is None:
        pytest.fail(
            f"{command.where}: `{command.text}` is neither run nor skipped with a reason: add it to RULES",
            pytrace=False,
        )


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text[:60]}" for c in COMMANDS])
def test_documented_command_works_as_typed(command, folder):
    if BARE.search(command.text):
        pytest.skip(f"{command.text}: not runnable as typed (test_every_documented_command_runs_in_a_new_shell fails)")
    rule = rule_for(command)
    if rule is None:
        pytest.fail(f"{command.where}: `{command.text}` is not in RULES")
    if rule.run is None:
        pytest.skip(f"{command.text}: {rule.why}")
    line = run_line(rule, command, folder.sent)
    result = folder.run(line, rule.stdin)
    shown = (
        f"{command.where}: `{line}` ({rule.why}) exit {result.code} in {result.seconds:.1f} s:\n{result.out[-3000:]}"
    )
    assert result.code == rule.code, shown
    assert "Traceback" not in result.out, shown
    for expected in rule.expect:
        assert expected in result.out, shown
    # A result the DuckDB shell cut short ("220 rows (40 shown)") hides the rows the question asks for.
    assert not re.search(r"\d+ rows \(\d+ shown\)", result.out), shown


@pytest.mark.slow
def test_report_as_of_a_date_before_any_publish_is_one_line(folder):
    """The README's point about `--as-of`: a date before the demo's first publish fails with one clear line."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    result = folder.run(f".venv/bin/python -m etl report --as-of {yesterday} --out then/")
    assert result.code == 1 and "Traceback" not in result.out
    assert result.out.strip().splitlines()[-1] == (
        f"error: nothing was published by {yesterday} 23:59 UTC (dim_region has no version then)"
    )
    assert "nothing was published by" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_demo_summary_prints_commands_that_work_as_typed(folder):
    """scripts/demo.py's summary on the demo folder's warehouse: every command it prints runs, with its query."""
    script = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
        f"import demo; demo.summary(Path({str(folder.path / 'warehouse')!r}))"
    )
    result = folder.run(f".venv/bin/python -c {shlex.quote(script)}")
    assert result.code == 0, result.out[-3000:]
    printed = demo_commands(result.out)
    literals = [c for name in ("demo.py", "demo_answers.py") for c in script_literals(ROOT / "scripts" / name)]
    assert len(printed) >= 2 and literals, (result.out, literals)
    for command in [c for c, _ in printed] + literals:
        assert not BARE.search(command.text), f"{command.where}: `{command.text}` does not run in a new shell"
    for command, stdin in printed:
        assert command.text.startswith(".venv/bin/duckdb "), command
        done = folder.run(command.text, stdin)
        assert done.code == 0 and "Error" not in done.out, (command, stdin, done.out[-2000:])
        assert "┌" in done.out, done.out  # a result table
    for command in literals:
        if command.text.startswith(".venv/bin/python -m etl run followup"):
            assert folder.run(command.text).code == 0
