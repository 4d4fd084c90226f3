import pandas as pd
import pytest

from etl import publish
from etl.privacy import contains_personal_data, mask_personal_data, neutralise_formula
from etl.publish import TableBatch


@pytest.mark.parametrize(
    "text",
    ["Kontakt: anna.svensson@regionuppsala.se", "pnr 19800101-1234", "811228-9874 ringde", "200001019876",
     "samordningsnr 701063-2391"],
)
def test_personal_data_is_masked(text):
    masked = mask_personal_data(text)
    assert not contains_personal_data(masked)
    assert "borttag" in masked


@pytest.mark.parametrize("text", ["1 234 567 kr", "2017-03-01", "SE2321000016-15CX", "159 mnkr", "tel 018-611 00 00"])
def test_ordinary_values_are_left_alone(text):
    assert mask_personal_data(text) == text


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)"])
def test_formula_looking_cells_are_neutralised(cell):
    assert neutralise_formula(cell) == "'" + cell


def test_quarantine_never_holds_personal_data(warehouse):
    rows = pd.DataFrame({"region_code": ["01"], "year": [2016], "population": [1], "source_file": ["a.csv"]})
    q = pd.DataFrame([{"source_file": "a.csv", "row_number": 2, "raw": "99;anna@example.se;19800101-1234",
                       "reason": "unknown region"}])
    publish.publish(str(warehouse), "test", TableBatch("population", rows, q, 2, ("region_code", "year")), "b1")
    for path in warehouse.rglob("*.parquet"):
        text = pd.read_parquet(path).to_csv()
        assert "anna@example.se" not in text and "19800101-1234" not in text
    assert "[e-post borttagen]" in publish.read_quarantine(str(warehouse), "population").column("raw")[0].as_py()
