"""The GX runner and its severity policy, on the real dim_region suite."""

import json
import re

import pandas as pd
import pytest

from etl import expectation_suites, regions, validation
from etl.errors import ValidationFailed


def _dim_region(codes):
    return pd.DataFrame(
        {
            "region_code": codes,
            "region_name": [f"Region {c}" for c in codes],
            "county_name": [f"Län {c}" for c in codes],
            "kolada_id": ["00" + c for c in codes],
            "_row": range(len(codes)),
        }
    )


def test_every_suite_is_valid_gx_json():
    from great_expectations.core.expectation_suite import ExpectationSuite

    from etl import schemas

    names = sorted(
        entry.name.removesuffix(".json")
        for entry in expectation_suites.suites_dir().iterdir()
        if entry.name.endswith(".json") and entry.is_file()
    )
    assert "population" in names and len(names) >= 10
    # A suite belongs to a registry table, whose schema may add the expectations it derives from a source;
    # the delivery suite judges a step's files (etl/verdict.py).
    assert set(names) <= {t.name for t in schemas.all_tables()} | {expectation_suites.DELIVERY_SUITE}
    for name in names:
        data = json.loads(expectation_suites.suite_path(name).read_text(encoding="utf-8"))
        ExpectationSuite(
            **expectation_suites.load_suite_json(name)
        )  # the suite as validation uses it, derived ones too
        suite = ExpectationSuite(**data)
        assert suite.name == name
        for exp in suite.expectations:
            assert str(getattr(exp.severity, "value", exp.severity)) in {"critical", "warning", "info"}


def test_clean_batch_passes_and_results_are_persisted(warehouse):
    result = validation.validate(
        "dim_region", _dim_region(list(regions.REGION_CODES)), warehouse_uri=str(warehouse), batch_id="b1"
    )
    assert result.outcome == "passed" and not result.failed_rows
    saved = json.loads((warehouse / "_validation" / "dim_region" / "b1.json").read_text())
    assert saved["success"] is True
    page = (warehouse / "_data_docs" / "dim_region" / "b1.html").read_text()
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))  # the text a person sees
    assert "Must have exactly 21 rows" in page and "Succeeded" in page
    assert "b1.html" in (warehouse / "_data_docs" / "index.html").read_text()


def test_row_level_failures_are_named_by_row_and_reason():
    codes = list(regions.REGION_CODES)
    codes[4] = "99"
    frame = _dim_region(codes)
    frame.loc[7, "kolada_id"] = "7"
    result = validation.validate("dim_region", frame)
    assert result.failed_rows == {
        4: ["region_code is not one of the 21 regions"],
        7: ["kolada_id is not 00 + region code"],
    }
    assert not result.critical


def test_batch_level_critical_failure_blocks_with_a_readable_message():
    result = validation.validate("dim_region", _dim_region(list(regions.REGION_CODES)[:20]))
    assert result.outcome == "failed"
    with pytest.raises(ValidationFailed, match="exactly the 21 regions.*observed 20"):
        result.raise_if_blocked()


def test_range_checks_on_nullable_integers_flag_exactly_the_bad_rows():
    """Nullable counts go to GX as numpy dtypes: a gap is missing (not a failure), a negative fails."""
    frame = pd.DataFrame(
        {
            "month": ["2024-02"] * 4,
            "date": [pd.Timestamp(f"2024-02-0{i + 1}").date() for i in range(4)],
            "_check_date_in_month": [True] * 4,
            "region_code": ["01"] * 4,
            "unit_hsa_id": ["SE2321000016-A1"] * 4,
            "bookings": pd.array([3, None, -2, 2**40], dtype="Int64"),
            "cancellations": pd.array([0, 0, 0, 0], dtype="Int64"),
            "rebookings": pd.array([None, None, None, None], dtype="Int64"),
            "_row": range(4),
        }
    )
    result = validation.validate("ehealth_unit_daily", frame)
    assert result.failed_rows == {2: ["negative bookings"]}
    assert frame["bookings"].dtype == "Int64"  # the caller's frame is left as it was


def test_validation_results_carry_no_frame_fingerprint(warehouse):
    """GX's per-batch MD5 fingerprint is switched off (a third of validation time on large batches)."""
    validation.validate(
        "dim_region", _dim_region(list(regions.REGION_CODES)), warehouse_uri=str(warehouse), batch_id="b2"
    )
    saved = (warehouse / "_validation" / "dim_region" / "b2.json").read_text()
    assert "pandas_data_fingerprint" not in saved
