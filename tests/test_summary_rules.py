"""Issue 25: the rules that word the report's Sammanfattning (etl/marts/summary.py, docs/summary-rules.md).

The quantifier table's bounds are checked case by case (every boundary, table-driven), as a
partition (for any count exactly one band or exact row applies), and against its doc; the
sentences for the unanswered and nobody-answered cases, and the choice of year, on small
national frames. The sentences on a real warehouse, against sql/06, are in test_report_contents.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from etl.marts import summary

ROOT = Path(__file__).resolve().parent.parent
WORDS = [q.word for q in summary.QUANTIFIERS]


def _word(yes: int, answered: int) -> str:
    """The quantifier's word for yes of answered (answered > 0: quantifier is None only when nobody answered)."""
    quantifier = summary.quantifier(yes, answered)
    assert quantifier is not None, (yes, answered)
    return quantifier.word


@pytest.mark.parametrize(
    ("yes", "answered", "word"),
    [
        (0, 21, "ingen"),
        (0, 1, "ingen"),
        (1, 21, "en"),
        (1, 3, "en"),
        (1, 5, "en"),  # 1/5 exactly, but one region: "en", not "ett fåtal"
        (2, 21, "ett fåtal"),
        (2, 10, "ett fåtal"),  # 1/5 exactly: upper bound of "ett fåtal", inclusive
        (4, 21, "ett fåtal"),
        (5, 21, "en minoritet"),  # 0.238 > 1/5
        (3, 10, "en minoritet"),
        (8, 21, "en minoritet"),  # 0.381 < 2/5
        (2, 5, "knappt hälften"),  # 2/5 exactly: lower bound of "knappt hälften", inclusive
        (4, 10, "knappt hälften"),
        (9, 21, "knappt hälften"),
        (10, 21, "knappt hälften"),  # the agency's clinical introduction year, 2016
        (1, 2, "hälften"),
        (10, 20, "hälften"),  # exactly half: neither "knappt" nor "drygt"
        (9, 18, "hälften"),
        (11, 21, "drygt hälften"),
        (3, 5, "drygt hälften"),  # 3/5 exactly: upper bound of "drygt hälften", inclusive
        (12, 21, "drygt hälften"),
        (13, 21, "en majoritet"),  # 0.619 > 3/5
        (15, 21, "en majoritet"),  # the agency's study salary, 2016
        (18, 21, "en majoritet"),  # 0.857 < 9/10
        (9, 10, "nästan samtliga"),  # 9/10 exactly: lower bound of "nästan samtliga", inclusive
        (19, 21, "nästan samtliga"),
        (20, 21, "nästan samtliga"),
        (21, 21, "samtliga"),
        (1, 1, "samtliga"),
        (18, 18, "samtliga"),
    ],
)
def test_quantifier_bounds(yes, answered, word):
    assert _word(yes, answered) == word


def test_nobody_answered_has_no_quantifier_and_impossible_counts_are_refused():
    assert summary.quantifier(0, 0) is None
    with pytest.raises(ValueError):
        summary.quantifier(3, 2)
    with pytest.raises(ValueError):
        summary.quantifier(-1, 2)


def test_the_bands_and_exact_rows_partition_every_share():
    """Without the count row ("en"), exactly one row holds for any yes of answered: no gap, no overlap."""
    by_share = [q for q in summary.QUANTIFIERS if q.yes_count is None]
    for answered in range(1, 61):
        for yes in range(answered + 1):
            holding = [q.word for q in by_share if q.matches(yes, answered)]
            assert len(holding) == 1, (yes, answered, holding)


def test_the_words_rise_with_the_share():
    """For a fixed number answering, more yes never gives a smaller quantifier."""
    rank = {
        w: i
        for i, w in enumerate(
            [
                "ingen",
                "en",
                "ett fåtal",
                "en minoritet",
                "knappt hälften",
                "hälften",
                "drygt hälften",
                "en majoritet",
                "nästan samtliga",
                "samtliga",
            ]
        )
    }
    assert set(rank) == set(WORDS)
    for answered in range(1, 41):
        ranks = [rank[_word(yes, answered)] for yes in range(answered + 1)]
        assert ranks == sorted(ranks), answered


def test_bounds_are_exact_fractions():
    for q in summary.QUANTIFIERS:
        assert isinstance(q.low, Fraction) and isinstance(q.high, Fraction) and q.low <= q.high


def test_docs_hold_the_tables_the_code_uses():
    """docs/summary-rules.md holds the generated text of the tables (regenerate: make docs)."""
    doc = (ROOT / summary.RULES_DOC).read_text(encoding="utf-8")
    assert summary.rules_markdown() in doc
    assert summary.questions_markdown() in doc
    assert f"({'../' + summary.QUERY})" in doc and (ROOT / summary.QUERY).is_file()
    for q in summary.QUANTIFIERS:
        assert f"| {q.word} | {q.subject} | {q.condition()} |" in doc


def test_the_generated_table_counts_match_the_rule():
    table = summary.rules_markdown(21)
    assert "| 7 | knappt hälften | Knappt hälften av regionerna | 2/5 ≤ share < 1/2 | 9, 10 |" in table
    assert "| 9 | en majoritet | En majoritet av regionerna | 3/5 < share < 9/10 | 13–18 |" in table
    assert "| 3 | hälften | Hälften av regionerna | share = 1/2 | – |" in table  # 21 is odd


# --------------------------------------------------------------------------- sentences

CLINICAL = next(q for q in summary.QUESTIONS if q.key == "offers_clinical_intro_year")
REPORTED = next(q for q in summary.QUESTIONS if q.key == "reported")


def test_everyone_answered_no_unanswered_clause():
    s = summary.sentence(CLINICAL, 2016, 10, 21, 21)
    assert s.text == (
        "Knappt hälften av regionerna (10 av 21) erbjuder ett kliniskt introduktionsår för "
        "nyutexaminerade sjuksköterskor."
    )
    assert (s.yes, s.answered, s.not_answered, s.word) == (10, 21, 0, "knappt hälften")


def test_unanswered_are_said_not_counted_as_no():
    s = summary.sentence(CLINICAL, 2016, 8, 18, 21)
    assert s.text.startswith("Knappt hälften av regionerna som svarat (8 av 18) erbjuder")
    assert s.text.endswith(" 3 regioner har inte svarat.")
    one = summary.sentence(CLINICAL, 2016, 20, 20, 21)
    assert one.text.startswith("Samtliga regioner som svarat (20 av 20)") and "1 region har inte svarat." in one.text
    assert "nej" not in s.text.lower()


def test_nobody_answered_is_said_instead_of_ingen():
    s = summary.sentence(CLINICAL, 2016, None, 0, 21)
    assert s.text == (
        "Ingen region har svarat på om den erbjuder ett kliniskt introduktionsår för "
        "nyutexaminerade sjuksköterskor (0 av 21 har svarat)."
    )
    assert s.word is None and s.yes is None
    none_yes = summary.sentence(CLINICAL, 2016, 0, 21, 21)
    assert none_yes.text.startswith("Ingen av regionerna (0 av 21) erbjuder")


def test_reported_never_has_unanswered_regions():
    s = summary.sentence(REPORTED, 2019, 15, 21, 21)
    assert s.text == "En majoritet av regionerna (15 av 21) har skickat in sin regionrapport."


def _national(rows: list[dict]) -> pd.DataFrame:
    """A followup_national_year frame with the summary's columns; a count not given: nobody answered."""
    answered = {q.answered_column for q in summary.QUESTIONS} - {"regions_total"}
    yes = {q.yes_column for q in summary.QUESTIONS} - {"regions_reported"}
    full = [{**{c: 0 for c in answered}, **{c: pd.NA for c in yes}, **row} for row in rows]
    return pd.DataFrame(full).astype("Int64")


def test_summary_is_of_the_latest_year_with_reports_compared_with_the_year_before():
    national = _national(
        [
            {
                "year": 2016,
                "regions_total": 21,
                "regions_reported": 21,
                "regions_offers_clinical_intro_year": 8,
                "regions_answered_offers_clinical_intro_year": 20,
            },
            {
                "year": 2017,
                "regions_total": 21,
                "regions_reported": 21,
                "regions_offers_clinical_intro_year": 10,
                "regions_answered_offers_clinical_intro_year": 21,
            },
            # E-health data only: no region reported, not the summary's year.
            {"year": 2018, "regions_total": 21, "regions_reported": 0},
        ]
    )
    drafted = summary.summarise(national)
    assert drafted.year == 2017
    clinical = next(s for s in drafted.sentences if s.question == "offers_clinical_intro_year")
    assert clinical.text.endswith(
        "(10 av 21) erbjuder ett kliniskt introduktionsår för nyutexaminerade "
        "sjuksköterskor. Året innan, 2016: 8 av 20."
    )
    assert clinical.previous == (2016, 8, 20)
    # A question nobody answered in 2017: said so, and no comparison.
    salary = next(s for s in drafted.sentences if s.question == "offers_specialist_nurse_study_salary")
    assert salary.text.startswith("Ingen region har svarat på om den erbjuder studielön") and salary.previous is None
    assert [s.question for s in drafted.sentences] == [q.key for q in summary.QUESTIONS]


def test_comparison_only_with_the_year_just_before():
    national = _national(
        [
            {
                "year": 2016,
                "regions_total": 21,
                "regions_reported": 21,
                "regions_offers_clinical_intro_year": 8,
                "regions_answered_offers_clinical_intro_year": 20,
            },
            {"year": 2017, "regions_total": 21, "regions_reported": 0},
            {
                "year": 2018,
                "regions_total": 21,
                "regions_reported": 21,
                "regions_offers_clinical_intro_year": 12,
                "regions_answered_offers_clinical_intro_year": 21,
            },
        ]
    )
    clinical = next(s for s in summary.summarise(national).sentences if s.question == "offers_clinical_intro_year")
    assert clinical.previous is None and "Året innan" not in clinical.text


def test_no_report_at_all_gives_no_sentences():
    drafted = summary.summarise(_national([{"year": 2016, "regions_total": 21, "regions_reported": 0}]))
    assert drafted.year is None and drafted.sentences == ()
