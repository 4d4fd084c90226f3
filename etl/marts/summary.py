"""The report's *Sammanfattning*: sentences drafted from the national mart by one documented rule.

This module owns

* :data:`QUANTIFIERS`, the quantifier table: which Swedish word ("samtliga",
  "en majoritet", "knappt hälften", …) a count of *yes out of those who
  answered* gets, with exact bounds as fractions and the boundary cases
  decided (none, one, exactly half, all). It is data: the code below and
  ``docs/summary-rules.md`` (written by ``etl docs`` from :func:`rules_markdown`, checked by
  ``tests/test_summary_rules.py``) read the same table;
* :data:`QUESTIONS`, what the summary speaks about (reported, earmarked, the
  programmes (each offer of the county report), web booking and *Journal via nätet* implemented) and
  where each count is in ``followup_national_year``;
* :func:`summarise`, the sentences for the latest report year of a national
  mart frame. The report renders them (:mod:`etl.marts.report`), whether
  from the published marts or from marts built as of a date
  (``python -m etl report --as-of``): the summary always reads the same
  frame as the rest of the report.

Every figure a sentence carries is a row of ``sql/06_summary_counts.sql``
(one row per year and question: ``yes``, ``answered``, ``not_answered``,
``regions``). Unanswered is never counted as "no": shares are of those who
answered, the unanswered are said in words, and when nobody answered the
sentence says that instead of "ingen".
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from etl.schemas.followup import COUNTED_FLAGS, FLAG_TEXT_SV, SERVICE_TEXT_SV

QUERY = "sql/06_summary_counts.sql"  # gives every figure of every sentence (one row per year and question)
RULES_DOC = "docs/summary-rules.md"


@dataclass(frozen=True)
class Quantifier:
    """One row of the quantifier table.

    Applies to *yes* regions out of *answered* regions (answered ≥ 1) when
    ``low ≤ yes/answered ≤ high`` (each bound inclusive or not) and, if
    ``yes_count`` is set, ``yes == yes_count``. The first matching row wins.
    """

    word: str  # the quantifier as written inside a sentence: "knappt hälften"
    subject: str  # how a sentence starts: "Knappt hälften av regionerna"
    low: Fraction
    low_inclusive: bool
    high: Fraction
    high_inclusive: bool
    yes_count: int | None = None

    def matches(self, yes: int, answered: int) -> bool:
        if self.yes_count is not None and yes != self.yes_count:
            return False
        share = Fraction(yes, answered)
        above = share >= self.low if self.low_inclusive else share > self.low
        below = share <= self.high if self.high_inclusive else share < self.high
        return above and below

    def condition(self) -> str:
        """The row's bounds as written in the docs: ``2/5 ≤ share < 1/2``."""
        if self.yes_count is not None:
            return f"yes = {self.yes_count} (and no row above holds)"
        if self.low == self.high:
            return f"share = {_fraction(self.low)}"
        low = f"{_fraction(self.low)} {'≤' if self.low_inclusive else '<'} "
        high = f" {'≤' if self.high_inclusive else '<'} {_fraction(self.high)}"
        return f"{low}share{high}"


def _fraction(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


F = Fraction
QUANTIFIERS: tuple[Quantifier, ...] = (
    Quantifier("ingen", "Ingen av regionerna", F(0), True, F(0), True),
    Quantifier("samtliga", "Samtliga regioner", F(1), True, F(1), True),
    Quantifier("hälften", "Hälften av regionerna", F(1, 2), True, F(1, 2), True),
    Quantifier("en", "En av regionerna", F(0), False, F(1), False, yes_count=1),
    Quantifier("ett fåtal", "Ett fåtal av regionerna", F(0), False, F(1, 5), True),
    Quantifier("en minoritet", "En minoritet av regionerna", F(1, 5), False, F(2, 5), False),
    Quantifier("knappt hälften", "Knappt hälften av regionerna", F(2, 5), True, F(1, 2), False),
    Quantifier("drygt hälften", "Drygt hälften av regionerna", F(1, 2), False, F(3, 5), True),
    Quantifier("en majoritet", "En majoritet av regionerna", F(3, 5), False, F(9, 10), False),
    Quantifier("nästan samtliga", "Nästan samtliga regioner", F(9, 10), True, F(1), False),
)


def quantifier(yes: int, answered: int) -> Quantifier | None:
    """The table's first row for ``yes`` of ``answered`` regions; None when nobody answered (answered = 0)."""
    if not 0 <= yes <= answered:
        raise ValueError(f"{yes} yes of {answered} answered is not a count")
    if answered == 0:
        return None
    return next(q for q in QUANTIFIERS if q.matches(yes, answered))


@dataclass(frozen=True)
class Question:
    """One thing the summary counts, as a row ``question = key`` of :data:`QUERY`.

    ``yes_column`` / ``answered_column`` are the counts in
    ``followup_national_year``; ``predicate`` completes "Regioner som …".
    """

    key: str
    predicate: str
    yes_column: str
    answered_column: str

    @property
    def everyone_answers(self) -> bool:
        """True for "reported": every region either sent its report or not, so nobody is unanswered."""
        return self.answered_column == "regions_total"


SUMMARY_SERVICES = ("web_booking", "patient_journal_online")
QUESTIONS: tuple[Question, ...] = (
    Question("reported", "har skickat in sin regionrapport", "regions_reported", "regions_total"),
    *(Question(flag, FLAG_TEXT_SV[flag], f"regions_{flag}", f"regions_answered_{flag}") for flag in COUNTED_FLAGS),
    *(
        Question(
            f"{service}_implemented",
            f"har infört {SERVICE_TEXT_SV[service]} fullt ut",
            f"regions_{service}_implemented",
            f"regions_{service}_reported",
        )
        for service in SUMMARY_SERVICES
    ),
)


@dataclass(frozen=True)
class Sentence:
    """One sentence of the summary and the figures it carries (all counts of regions).

    ``yes`` of ``answered`` (``yes`` None when nobody answered), ``regions``
    in all; ``previous`` = (year - 1, yes, answered) when that year has
    answers. Each figure is the row (``year``, ``question``) of ``query``.
    """

    question: str
    year: int
    text: str
    yes: int | None
    answered: int
    regions: int
    word: str | None
    previous: tuple[int, int, int] | None
    query: str = QUERY

    @property
    def not_answered(self) -> int:
        return self.regions - self.answered


@dataclass(frozen=True)
class Summary:
    """The sentences for ``year`` (the latest year with any region's report); None and no sentences if none."""

    year: int | None
    sentences: tuple[Sentence, ...]


def _count(value) -> int | None:
    """A nullable count from a pandas cell: None for NA/NaN/None."""
    if value is None or value != value:
        return None
    try:
        return int(value)
    except TypeError:  # pd.NA
        return None


def _regions(count: int) -> str:
    return f"{count} region" if count == 1 else f"{count} regioner"


def sentence(question: Question, year: int, yes: int | None, answered: int, regions: int, previous=None) -> Sentence:
    """The sentence for ``yes`` of ``answered`` regions (out of ``regions``) in ``year``, by :data:`QUANTIFIERS`.

    ``previous`` is (year, yes, answered) of the year before, or None.
    """
    if answered == 0:
        text = f"Ingen region har svarat på om den {question.predicate} (0 av {regions} har svarat)."
        return Sentence(question.key, year, text, None, 0, regions, None, None)
    if yes is None:
        raise ValueError(f"{question.key} {year}: {answered} answered but no count of yes")
    rule = quantifier(yes, answered)
    assert rule is not None  # answered > 0
    partial = answered < regions and not question.everyone_answers
    subject = rule.subject + (" som svarat" if partial else "")
    text = f"{subject} ({yes} av {answered}) {question.predicate}."
    if partial:
        text += f" {_regions(regions - answered)} har inte svarat."
    if previous is not None:
        text += f" Året innan, {previous[0]}: {previous[1]} av {previous[2]}."
    return Sentence(question.key, year, text, yes, answered, regions, rule.word, previous)


def summarise(national_year) -> Summary:
    """The summary of the latest report year of ``national_year``.

    ``national_year``: a ``followup_national_year`` frame (pandas; one row
    per year with ``regions_total``, ``regions_reported`` and the count
    columns named in :data:`QUESTIONS`). The year summarised is the latest
    with ``regions_reported > 0``; the comparison is with ``year - 1`` when
    that year has answers. Counts are numbers of regions.
    """
    rows = {int(r["year"]): r for r in national_year.to_dict("records")}
    reported = [y for y, r in rows.items() if (_count(r.get("regions_reported")) or 0) > 0]
    if not reported:
        return Summary(None, ())
    year = max(reported)
    row = rows[year]
    regions = _count(row["regions_total"]) or 0
    out = []
    for question in QUESTIONS:
        answered = _count(row[question.answered_column]) or 0
        yes = _count(row[question.yes_column])
        previous = None
        before = rows.get(year - 1)
        if before is not None and (_count(before.get("regions_reported")) or 0) > 0:
            before_answered = _count(before[question.answered_column]) or 0
            before_yes = _count(before[question.yes_column])
            if before_answered > 0 and before_yes is not None:
                previous = (year - 1, before_yes, before_answered)
        out.append(sentence(question, year, yes if answered else None, answered, regions, previous))
    return Summary(year, tuple(out))


def rules_markdown(regions: int = 21) -> str:
    """The quantifier table as the Markdown of ``docs/summary-rules.md`` (the doc holds exactly this text)."""
    lines = [
        f"| row | quantifier | the sentence starts | condition (share = yes / answered) | yes of {regions} answered |",
        "|---|---|---|---|---|",
    ]
    for number, rule in enumerate(QUANTIFIERS, start=1):
        counts = [k for k in range(regions + 1) if quantifier(k, regions) is rule]
        shown = ", ".join(str(k) for k in counts) if len(counts) <= 3 else f"{counts[0]}–{counts[-1]}"
        lines.append(f"| {number} | {rule.word} | {rule.subject} | {rule.condition()} | {shown or '–'} |")
    return "\n".join(lines) + "\n"


def questions_markdown() -> str:
    """The questions as the Markdown table of ``docs/summary-rules.md`` (the doc holds exactly this text)."""
    lines = [
        "| question | predicate (Swedish) | yes of answered in `followup_national_year` |",
        "|---|---|---|",
        *(f"| `{q.key}` | … {q.predicate} | `{q.yes_column}` of `{q.answered_column}` |" for q in QUESTIONS),
    ]
    return "\n".join(lines) + "\n"
