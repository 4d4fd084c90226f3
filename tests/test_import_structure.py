"""Issue 26 §2: arrows run one way — no import cycle among the project's modules, and only public names.

Every ``import`` counts, at top level or inside a function: an import
deferred into a function hides a cycle from Python's import machinery, not
from a reader. A module may use another module's public names only (no
``other._private``), so each module's public surface is what others rely on.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("etl", "dags", "plugins")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = _modules()


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str, path: Path, source: str | None = None) -> list[tuple[int, str, str | None]]:
    """(line, module imported, name taken from it or None) for every import in the file (or ``source``)."""
    out: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8") if source is None else source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = _package_of(name, path).split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            out += [(node.lineno, base, alias.name) for alias in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for _, module, taken in _imports(name, path):
            target = f"{module}.{taken}" if taken and f"{module}.{taken}" in MODULES else module
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    # The finder itself must see what this test exists for, or the real check below could never fail.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_projects_modules():
    graph = _graph()
    assert "etl.publish" in graph["etl.pipelines.skeleton"]  # the graph is built (a sanity anchor)
    assert _cycles(graph) == []


def test_approvals_decide_and_pipelines_call_them():
    graph = _graph()
    assert not {m for m in graph["etl.approvals"] if m.startswith("etl.pipelines")}
    assert "etl.approvals" in graph["etl.pipelines.skeleton"]


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _private_uses(name: str, path: Path, source: str) -> list[str]:
    """Where module ``name`` (at ``path``, text ``source``) takes another project module's private name: by
    ``from m import _x``, or as ``m._x`` through any import of ``m`` (``import a.m``, ``import a.m as x``,
    ``from a import m as x``)."""
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # a local name -> the module it stands for (or, for ``import a.m``, the package a)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
    for line, module, taken in _imports(name, path, source):
        if taken is None:
            continue
        if f"{module}.{taken}" in MODULES:
            continue  # a module: bound below, with its alias
        if taken.startswith("_") and not taken.startswith("__") and module in MODULES and module != name:
            uses.append(f"{path.relative_to(ROOT)}:{line}: from {module} import {taken}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = [module for line, module, _ in _imports(name, path, source) if line == node.lineno]
            for alias in node.names:
                full = f"{base[0]}.{alias.name}" if base else alias.name
                if full in MODULES:
                    bound[alias.asname or alias.name] = full
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        dotted = _dotted(node.value)
        if dotted is None or dotted.split(".")[0] not in bound:
            continue
        first, _, rest = dotted.partition(".")
        module = bound[first] + (f".{rest}" if rest else "")
        if module in MODULES and module != name:
            uses.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}.{node.attr}")
    return uses


def test_the_private_name_finder_sees_every_way_of_naming_a_module():
    path = ROOT / "etl" / "cli.py"
    for source in (
        "from etl import publish\npublish._open",
        "from etl import publish as pub\npub._open",
        "import etl.publish\netl.publish._open",
        "import etl.publish as pub\npub._open",
        "from etl.publish import _open",
        "from etl.pipelines import skeleton as sk\nsk._finish",
    ):
        assert _private_uses("etl.cli", path, source), source
    assert (
        _private_uses("etl.cli", path, "from etl import publish\npublish.publish\nself._x\nimport os\nos._exit") == []
    )


def test_a_module_uses_only_other_modules_public_names():
    uses = []
    for name, path in MODULES.items():
        uses += _private_uses(name, path, path.read_text(encoding="utf-8"))
    assert uses == []


# Issue 26 §3: small parts. A function over this many lines (docstring excluded) or this cyclomatic complexity
# (ruff's C901, mccabe) says why in a "# Size:" comment inside it; a new one that does not fails here.
MAX_LINES, MAX_COMPLEXITY = 60, 15


def _functions():
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield name, path, node


def _body_lines(node) -> int:
    first = node.body[0]
    documented = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    start = first.end_lineno + 1 if documented else node.lineno
    return node.end_lineno - start + 1


def _says_why(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A "# Size:" comment in the function's own lines: one inside a nested function speaks for that one."""
    nested = {
        n
        for inner in ast.walk(node)
        if inner is not node and isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in range(inner.lineno, (inner.end_lineno or inner.lineno) + 1)
    }
    return any(
        lines[n - 1].strip().startswith("# Size:")
        for n in range(node.lineno, (node.end_lineno or node.lineno) + 1)
        if n not in nested
    )


def test_a_size_comment_in_a_nested_function_does_not_speak_for_the_outer_one():
    source = "def outer():\n    def inner():\n        # Size: inner's reason\n        pass\n    return inner\n"
    outer = ast.parse(source).body[0]
    assert isinstance(outer, ast.FunctionDef)
    assert not _says_why(source.splitlines(), outer)
    inner = outer.body[0]
    assert isinstance(inner, ast.FunctionDef) and _says_why(source.splitlines(), inner)


def test_long_or_branchy_functions_say_why():
    import json
    import subprocess
    import sys

    ruff = Path(sys.executable).parent / "ruff"
    found = subprocess.run(
        [
            str(ruff),
            "check",
            "--select",
            "C901",
            "--config",
            f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
            "--output-format",
            "json",
            "--exit-zero",
            *PACKAGES,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    complex_at = {(Path(d["filename"]).resolve(), d["location"]["row"]) for d in json.loads(found.stdout)}
    assert complex_at, "ruff found no function over the bound: the check itself would be blind"
    unexplained, flagged = [], 0
    for _, path, node in _functions():
        if _body_lines(node) <= MAX_LINES and (path.resolve(), node.lineno) not in complex_at:
            continue
        flagged += 1
        if not _says_why(path.read_text(encoding="utf-8").splitlines(), node):
            unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert flagged > 0
    assert unexplained == [], "say why in a '# Size:' comment, or split the function"
