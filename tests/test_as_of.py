"""Issue 14: figures as they were — ``python -m etl report --as-of DATE`` from the table versions of that date."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from etl import publish
from etl.errors import EtlError
from etl.pipelines import county_reports, followup, reference
from tests.settings_support import local_settings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _notes(path: str) -> dict[str, tuple]:
    """Anteckningar's rows by their first cell (a table's: name, changed, checked, version)."""
    notes = load_workbook(path)["Anteckningar"]
    return {r[0]: r for r in notes.iter_rows(values_only=True) if isinstance(r[0], str) and r[0]}


def _first_sheet(path: str) -> list[tuple]:
    return list(load_workbook(path).worksheets[0].iter_rows(values_only=True))


def test_a_report_as_of_a_date_uses_the_versions_of_that_date(tmp_path):
    from etl.sample import county_reports as county_sample
    from etl.sample import reference as reference_sample

    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    for module in (reference_sample, county_sample):
        module.write(landing, 2019, 2019, units=0, unit_months=0, seed=2016)
    settings = local_settings(landing, warehouse)
    reference.run(settings, offline_snapshot=True)
    county_reports.run(settings)
    followup.run(settings)
    time.sleep(1.1)
    before = dt.datetime.now(dt.UTC)
    time.sleep(1.1)

    # A correction raises a region's 2019 grant by 1 000 000 SEK (the first region whose report is the web form's).
    original = sorted((landing / "county_reports").glob("arsrapport_2019_*.json"))[0]
    code = original.name.split("_")[2]
    doc = json.loads(original.read_text(encoding="utf-8"))
    [published] = [
        r for r in publish.read_table(str(warehouse), "county_report").to_pylist() if r["region_code"] == code
    ]
    doc["grant_sek"] = f"{published['grant_sek'] + 1_000_000} kr"
    (landing / "county_reports" / f"arsrapport_2019_{code}_rattelse.json").write_text(json.dumps(doc), encoding="utf-8")
    county_reports.run(settings)
    followup.run(settings)

    then = followup.build_as_of(settings, before, str(tmp_path / "then"))
    now = followup.build_as_of(settings, dt.datetime.now(dt.UTC), str(tmp_path / "now"))
    then_version = _notes(then["workbook"])["county_report"][3]
    now_version = _notes(now["workbook"])["county_report"][3]
    assert (then_version, now_version) == (1, 2)  # version 0: the table created empty
    assert "county_report" in Path(then["report"]).read_text(encoding="utf-8")
    changed = [
        (a, b)
        for ra, rb in zip(_first_sheet(then["workbook"]), _first_sheet(now["workbook"]), strict=False)
        for a, b in zip(ra, rb, strict=False)
        if a != b
    ]
    assert changed, "the correction should change figures between the two reports"
    # Built again as of the same moment: the same figures (reproducible).
    again = followup.build_as_of(settings, before, str(tmp_path / "again"))
    assert _first_sheet(again["workbook"]) == _first_sheet(then["workbook"])

    with pytest.raises(EtlError, match="nothing was published by 2001-01-01"):
        followup.build_as_of(settings, dt.datetime(2001, 1, 1, tzinfo=dt.UTC), str(tmp_path / "x"))
    # A warehouse where nothing was ever published (a wrong URI) is named as such, not blamed on the date.
    elsewhere = dataclasses.replace(settings, warehouse_uri=str(tmp_path / "no-warehouse"))
    with pytest.raises(EtlError, match="nothing is published in .*no-warehouse: it has no dim_region table"):
        followup.build_as_of(elsewhere, dt.datetime(2001, 1, 1, tzinfo=dt.UTC), str(tmp_path / "x"))

    # Through the CLI: one line per file, exit 0; a bad date is a usage error (exit 2), no traceback.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "report",
            "--as-of",
            before.isoformat(),
            "--out",
            str(tmp_path / "cli"),
            "--warehouse",
            str(warehouse),
            "--landing",
            str(landing),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["workbook", "report"]
    # Without --out (as the analyst guide writes it): beside the current outputs, under exports/as-of/.
    default = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "report",
            "--as-of",
            before.isoformat(),
            "--warehouse",
            str(warehouse),
            "--landing",
            str(landing),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert default.returncode == 0, default.stderr
    written = [line.split(": ", 1)[1] for line in default.stdout.splitlines()]
    assert [Path(p).parent for p in written] == [warehouse / "exports" / "as-of"] * 2
    assert all(Path(p).is_file() for p in written)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "etl",
            "report",
            "--as-of",
            "last tuesday",
            "--out",
            str(tmp_path / "cli"),
            "--warehouse",
            str(warehouse),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--as-of must be a date" in bad.stderr
