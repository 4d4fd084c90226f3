"""The input contract belongs to the project: nothing points outside the clone."""

import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUTSIDE = "../" + "shared/"


def test_no_reference_to_a_contract_outside_the_clone():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for name in tracked.split():
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".json", ".yml", ".yaml", ".txt", ".toml", ".cfg", ".ini"}:
            continue
        if name == "tests/test_docs_contract.py":
            continue
        if OUTSIDE in path.read_text(encoding="utf-8", errors="replace"):
            offenders.append(name)
    assert offenders == []
    assert (ROOT / "docs" / "input-formats.md").is_file()
