"""Issue 13 §6: ``python -m etl check FILE…`` judges files as a run would and writes nothing.

Each verdict is checked against what a run then does with the same file,
so the check cannot drift from the pipelines it stands in for.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from etl import check, publish
from etl.errors import ValidationFailed
from etl.pipelines import county_reports as county
from etl.pipelines import ehealth_adoption as pipeline
from tests.cli_support import run_etl
from tests.county_support import DAY, T0, builders
from tests.export_support import journal_logins as _journal
from tests.export_support import pipeline_lines as _lines
from tests.export_support import set_cell as _set
from tests.export_support import write_export as _write

ROOT = Path(__file__).resolve().parent.parent


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` → SHA-256 of its content: what "nothing was written" compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return run_etl(*args, env=env_extra, cwd=Path.cwd())


def test_good_files_would_load_and_a_check_writes_nothing(settings, landing, warehouse, tmp_path):
    journal = _write(landing, "journalen")
    report = builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    verdicts = check.check([str(journal), str(report)], settings)
    assert [(v.name, v.verdict) for v in verdicts] == [
        ("journalen_2017-03.csv", check.LOADS),
        ("uppsala.json", check.LOADS),
    ]
    assert "ehealth_adoption: 63 row(s) to load (new)" in verdicts[0].lines
    assert any(line.startswith("county_initiative: ") and "(new)" in line for line in verdicts[1].lines)
    assert _tree(warehouse) == {}  # no table, quarantine, load log, validation result or state file

    # Loaded, the same files are "already published as it is"; a second check again writes nothing.
    pipeline.run(settings)
    county.run(settings)
    before = _tree(warehouse)
    again = check.check([str(journal), str(report)], settings)
    assert [v.verdict for v in again] == [check.UNCHANGED, check.UNCHANGED]
    assert _tree(warehouse) == before


def test_a_correction_that_would_shrink_is_reported_blocked_as_the_run_then_does(
    settings, landing, warehouse, tmp_path
):
    _write(landing, "journalen")
    _write(landing, "webbtidbok")
    pipeline.run(settings)
    before = _journal(warehouse)
    broken = _write(tmp_path / "outbox", "journalen", lines=_set(_lines("journalen"), "08", 3, before["08"] + 1))
    tree = _tree(warehouse)

    [verdict] = check.check([str(broken)], settings)
    assert verdict.verdict == check.BLOCKED
    assert "lack 1 region(s): 08 Region Kalmar län" in verdict.lines[0]
    # Blocked by a quarantined line, which no approval can release (the sender replaces the file): what it
    # would load is said as judged, none of it loading, not as what an approval would load (helper-26).
    assert "a person may approve" not in verdict.lines[0]
    assert not [line for line in verdict.lines if line.startswith("if approved: ")], verdict.lines
    assert any(
        line.startswith("as judged (none of it loads): ehealth_adoption: ")
        and "replacing 63 published row(s) of journalen_2017-03" in line
        and "3 row(s) would be quarantined" in line
        for line in verdict.lines
    ), verdict.lines
    assert _tree(warehouse) == tree

    # The run agrees: the same file in landing is blocked and the region's month stays.
    os.replace(broken, landing / "ehealth" / broken.name)
    with pytest.raises(ValidationFailed, match="journalen_2017-03.csv: blocked"):
        pipeline.run(settings)
    assert _journal(warehouse) == before


def test_county_json_left_out_or_misspelt_lists_are_blocked_or_refused(settings, landing, tmp_path):
    builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc()), T0)
    county.run(settings)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    left_out = builders.doc()
    del left_out["initiatives"]  # the web form leaves an empty list out: says nothing about the published ones
    (outbox / "uppsala.json").write_bytes(builders.json_bytes(left_out))
    misspelt = builders.doc()
    misspelt["Initiatives"] = misspelt.pop("initiatives")
    (outbox / "uppsala_rattelse.json").write_bytes(builders.json_bytes(misspelt))
    new_region = outbox / "sormland.json"
    new_region.write_bytes(builders.json_bytes(builders.doc(region="04", spend_sek={"it_support": "-5 000 kr"})))

    first, second, third = (
        check.check([str(outbox / name)], settings)[0]
        for name in ("uppsala.json", "uppsala_rattelse.json", "sormland.json")
    )
    assert first.verdict == check.BLOCKED
    assert "the file has no rows for county_initiative" in first.lines[0]
    assert second.verdict == check.REFUSED
    assert (
        second.lines[0] == "unknown key(s), not produced by the web form: 'Initiatives' (did you mean 'initiatives'?)"
    )
    assert third.verdict in (check.QUARANTINE, check.REFUSED) and third.lines


def test_files_no_pipeline_takes_are_refused_by_name(settings, tmp_path):
    readme = tmp_path / "README.txt"
    readme.write_text("hej")
    broken = tmp_path / "journalen_2017-13.csv"
    broken.write_text("x")
    verdicts = check.check([str(readme), str(broken), str(tmp_path / "missing.xlsx")], settings)
    assert [v.verdict for v in verdicts] == [check.REFUSED] * 3
    assert "not a file any pipeline takes" in verdicts[0].lines[0]
    assert "month 13" in verdicts[1].lines[0]
    assert "no such file" in verdicts[2].lines[0]


def test_a_file_refused_whole_is_refused_even_when_it_replaces_nothing(settings, tmp_path):
    # Månad says April in March's file: quarantined whole by a run, so refused here.
    lines = [line.replace("2017-03;", "2017-04;") for line in _lines("journalen")]
    wrong_month = _write(tmp_path / "outbox", "journalen", lines=lines)
    [verdict] = check.check([str(wrong_month)], settings)
    assert verdict.verdict == check.REFUSED, verdict


def test_cli_exit_codes_and_output(settings, landing, warehouse, tmp_path):
    good = _write(tmp_path / "outbox", "journalen")
    done = _cli("check", str(good), "--warehouse", str(warehouse))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "journalen_2017-03.csv: would load"
    assert done.stdout.splitlines()[-1] == "1 file(s) checked: 1 would load (nothing was written)"

    bad = tmp_path / "notes.docx"
    bad.write_text("x")
    done = _cli("check", str(good), str(bad), "--warehouse", str(warehouse))
    assert done.returncode == 1
    assert "notes.docx: refused" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert _tree(warehouse) == {}


def test_credentials_in_a_file_uri_never_reach_the_output(settings, tmp_path):
    done = _cli("check", "http://user:s3cret@127.0.0.1:9/journalen_2017-03.csv", "--warehouse", str(tmp_path / "wh"))
    assert done.returncode == 1
    assert "s3cret" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_good_correction_would_load_replacing_the_published_month(settings, landing, warehouse, tmp_path):
    _write(landing, "journalen")
    pipeline.run(settings)
    assert publish.read_table(str(warehouse), "ehealth_adoption").num_rows == 63
    logins = _journal(warehouse)["08"] + 1000
    corrected = _write(tmp_path / "outbox", "journalen", lines=_set(_lines("journalen"), "08", 2, logins))
    [verdict] = check.check([str(corrected)], settings)
    assert verdict.verdict == check.LOADS, verdict
    assert "ehealth_adoption: 63 row(s) to load, replacing 63 published row(s) of journalen_2017-03" in verdict.lines


def test_a_superseded_report_checked_in_landing_is_superseded_alone_as_with_its_correction(
    settings, landing, warehouse, tmp_path
):
    # Issue 25: the demo's superseded original, checked alone where it lies, said "would load" although the
    # run (which judges landing as a whole) never loads it. In landing it is judged among its neighbours.
    original = builders.land(landing, "uppsala.json", builders.json_bytes(builders.doc(grant_sek="20 mnkr")), T0)
    correction = builders.land(
        landing, "uppsala_rattelse.xlsx", builders.xlsx_bytes(builders.doc(grant_sek="22 mnkr")), T0 + DAY
    )
    run_says = county.run(settings)
    assert any("quarantined uppsala.json: superseded by uppsala_rattelse.xlsx" in m for m in run_says.messages)
    tree = _tree(warehouse)

    alone, together = check.check([str(original)], settings), check.check([str(original), str(correction)], settings)
    assert [v.verdict for v in alone] == [check.SUPERSEDED]
    assert alone[0].lines == [
        f"superseded by uppsala_rattelse.xlsx, a later file for the same region and year in "
        f"{landing / 'county_reports'}: a run does not load it"
    ]
    assert [v.verdict for v in together] == [check.SUPERSEDED, check.UNCHANGED]
    assert _tree(warehouse) == tree

    # The same original outside landing is a sender's new file: judged as if it landed now, alone.
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    copy = outbox / "uppsala.json"
    copy.write_bytes(original.read_bytes())
    [sender] = check.check([str(copy)], settings)
    assert sender.verdict == check.LOADS
    assert any("replacing 1 published row(s) of region 03" in line for line in sender.lines), sender.lines


def test_an_export_checked_in_landing_beside_a_second_file_of_its_kind_and_month_is_refused(
    settings, landing, tmp_path
):
    journal = _write(landing, "journalen")
    second = landing / "ehealth" / "Journalen_2017-03.csv"
    second.write_bytes(journal.read_bytes())
    [verdict] = check.check([str(journal)], settings)
    assert verdict.verdict == check.REFUSED
    assert "Journalen_2017-03.csv is in" in verdict.lines[0] and "a run refuses the month" in verdict.lines[0]
    with pytest.raises(Exception, match="Journalen_2017-03.csv"):
        pipeline.run(settings)


def test_an_approvable_block_says_what_an_approval_would_load(settings, tmp_path):
    """A region missing (Gotland did not report): a person may approve it, and check says what that would load."""
    lacking = _write(
        tmp_path / "outbox", "journalen", lines=[line for line in _lines("journalen") if ";09;" not in line]
    )
    [verdict] = check.check([str(lacking)], settings)
    assert verdict.verdict == check.BLOCKED
    assert "lack 1 region(s): 09 Region Gotland" in verdict.lines[0] and "a person may approve" in verdict.lines[0]
    assert any(
        line.startswith("if approved: ehealth_adoption: ") and "row(s) to load" in line for line in verdict.lines
    ), verdict.lines
    assert not [line for line in verdict.lines if line.startswith("as judged")], verdict.lines


def test_a_file_named_with_personal_data_is_refused_masked_by_check_and_by_a_run(
    settings, landing, warehouse, tmp_path
):
    """A name is lineage (source_file, the load log, every line naming the file): one holding an address or a
    personnummer is refused, and every line names it masked (helper-26)."""
    name = "uppsala från anna.svensson@region.se 19800101-1234.json"
    masked = "uppsala från [e-post borttagen] [personnummer borttaget].json"
    rule = f"{masked!r}: the file name holds personal data (an e-mail address); rename the file"
    sent = tmp_path / "outbox" / name
    sent.parent.mkdir()
    sent.write_bytes(builders.json_bytes(builders.doc(region="Region Uppsala")))
    [verdict] = check.check([str(sent)], settings)
    assert verdict.verdict == check.REFUSED and verdict.lines[0].startswith(rule)
    assert check.render([verdict])[0] == f"{masked}: refused"

    (landing / "county_reports").mkdir(parents=True)
    os.replace(sent, landing / "county_reports" / name)
    with pytest.raises(Exception) as failed:
        county.run(settings)
    assert rule in str(failed.value) and "anna.svensson" not in str(failed.value)
    assert publish.table_rows(str(warehouse), "county_report") in (None, 0)
    stored = b"".join(p.read_bytes() for p in warehouse.rglob("*") if p.is_file())
    assert b"anna.svensson" not in stored and b"19800101" not in stored

    # Whatever rule a name breaks, the line refusing it masks it; a date-time stamp is no personnummer to refuse.
    (landing / "county_reports" / name).unlink()
    (landing / "county_reports" / "bo 070-123 45 67.docx").write_text("x")
    (landing / "county_reports" / "Region Uppsala 20200215-1030.xlsx").write_bytes(b"PK")
    with pytest.raises(Exception) as failed:
        county.run(settings)
    assert "'bo [telefonnummer borttaget].docx': not a file type this folder takes" in str(failed.value)
    assert "070-123" not in str(failed.value)
    [stamped] = check.check([str(landing / "county_reports" / "Region Uppsala 20200215-1030.xlsx")], settings)
    assert "personal data" not in " ".join(stamped.lines)
