"""The HTML follow-up report: one self-contained file that can be mailed and printed.

``<warehouse>/exports/followup_report.html`` answers the follow-up on its own:
the *Sammanfattning* (sentences drafted from the national mart by
:mod:`etl.marts.summary`), the national figures per year, and per region
and year — one region × year table per measure with the national line
(*Riket*) last — the grant and the spend on the three priority areas in
kronor and per inhabitant, the programmes of the county report, and each
e-health series per 1 000 inhabitants (web booking, *Journal via nätet*:
:data:`etl.sources.ehealth_spec.SERIES`). Charts are inline base64 PNGs
(matplotlib, Agg backend — no display, no browser needed); the file
references no other file (links only to its own sections). Texts are in
Swedish like the workbook, each table naming its column in the database
(``followup.duckdb``, or ``sql/07`` for a figure computed here); unknown is
written "uppgift saknas", never 0 or "Nej". A print style sheet prints it on
A4 landscape, each table whole on a page with its header row.

This module owns the layout and the figures computed for display only
(spend per inhabitant, :func:`money_per_region`, the same rule as
``sql/07_grant_and_spend_per_inhabitant.sql``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import itertools
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from etl import storage
from etl.marts import summary as summary_rules
from etl.marts.exports import (
    APPROVED_HEADING,
    AREA_SV,
    EXPORTS,
    FLAG_SV,
    HEADERS_REGION,
    notes_rows,
    write_bytes_atomic,
)
from etl.schemas.followup import AREA_TEXT, AREAS, FLAG_TEXT, FLAGS
from etl.sources.ehealth_spec import SERIES

REPORT_FILE = "followup_report.html"
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
AREA_COLOURS = {"it_support": "#0072B2", "competence_use": "#E69F00", "competence_supply": "#009E73"}
YES, NO, UNKNOWN = "#0072B2", "#E69F00", "#D9D9D9"
# Okabe-Ito colours (without black), one per offer in the trend chart, repeating after seven.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
# Column heads of the offers grid, hyphenated by hand where the long compounds would run into each
# other; any other offer's template label is wrapped (_grid_label).
GRID_LABELS = {
    "offers_clinical_intro_year": "Kliniskt\nintroduktions-\når",
    "offers_specialist_nurse_study_salary": "Studielön\nspecialist-\nsjuksköterska",
    "has_care_near_service": "Vårdnära\nservice",
    "has_task_shifting": "Uppgifts-\nväxling",
}


def _grid_label(flag: str) -> str:
    return GRID_LABELS.get(flag) or textwrap.fill(FLAG_SV[flag], 14)


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on workers; must precede pyplot
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100}
    )
    return plt


def _png(fig) -> str:
    plt = _plt()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _placeholder(title: str, text: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 2))
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    return _png(fig)


def fmt_number(value, decimals: int = 0, percent: bool = False) -> str:
    """Swedish number format: thin space between thousands, decimal comma; '–' for unknown."""
    import pandas as pd

    if value is None or pd.isna(value):
        return "–"
    if percent:
        value = float(value) * 100
    text = f"{float(value):,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text + (" %" if percent else "")


def _values(series) -> list:
    """A nullable column as Python values with None for unknown (pd.NA and NaN alike)."""
    return [None if v is None or v != v else v for v in series.astype(object).where(series.notna(), None)]


def _latest_report_year(national_year) -> int | None:
    reported = national_year[national_year["regions_reported"] > 0]
    return int(reported["year"].max()) if len(reported) else None


def _monthly_gaps(series, months):
    """One row per month of the whole span, NaN where a month is missing or suppressed: the line breaks there."""
    return series.set_index("month")[["per_1000"]].reindex(months).rename_axis("month").reset_index()


def chart_adoption(monthly, names: dict[str, str]) -> str:
    """Small multiples: journal unique users per 1 000 inhabitants per month, each region against the country."""
    # Size: one SVG chart: scales, axes, lines and labels, drawn in order.
    import pandas as pd

    title = "Journalen via nätet: unika användare per 1 000 invånare, per månad"
    series = monthly[(monthly["series"] == "journal_unique_users")].dropna(subset=["per_1000"])
    series = series.assign(month=pd.to_datetime(series["month"]), per_1000=series["per_1000"].astype(float))
    if not len(series):
        return _placeholder(title, "Inga uppgifter om Journalen ännu")
    plt = _plt()
    codes = sorted(names)
    cols = 3
    rows = -(-len(codes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.0 * rows + 1), sharex=True, sharey=True, squeeze=False)
    months = pd.date_range(series["month"].min(), series["month"].max(), freq="MS")
    national = _monthly_gaps(series[series["region_code"] == "00"], months)
    top = float(series["per_1000"].max()) * 1.08
    for ax, code in zip(axes.flat, codes, strict=False):
        mine = _monthly_gaps(series[series["region_code"] == code], months)
        if national["per_1000"].notna().any():
            ax.plot(
                national["month"], national["per_1000"], color="#999999", linestyle="--", linewidth=1, label="Riket"
            )
        if mine["per_1000"].notna().any():
            # Markers when points are few: a single month would otherwise be an invisible line.
            few = mine["per_1000"].notna().sum() < 24
            ax.plot(
                mine["month"],
                mine["per_1000"],
                color="#0072B2",
                linewidth=1.6,
                label="Regionen",
                marker="o" if few else None,
                markersize=3,
            )
        else:
            ax.text(0.5, 0.5, "inga uppgifter", transform=ax.transAxes, ha="center", va="center", color="#666666")
        ax.set_title(names[code], fontsize=10)
        ax.set_ylim(0, top)
        ax.grid(axis="y", color="#eeeeee")
    for ax in axes.flat[len(codes) :]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("per 1 000 inv.")
    import matplotlib.dates as mdates

    span = series["month"].max().year - series["month"].min().year
    for ax in axes[-1, :]:
        # Eleven year labels do not fit under a third of the page: every second or third year.
        ax.xaxis.set_major_locator(mdates.YearLocator(base=max(1, -(-span // 4))))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
        ax.set_xlabel("Månad")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if not handles:
        handles = [
            plt.Line2D([], [], color="#0072B2", linewidth=1.6),
            plt.Line2D([], [], color="#999999", linestyle="--"),
        ]
        labels = ["Regionen", "Riket"]
    fig.legend(handles, labels, loc="upper right", ncol=2, frameon=False)
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _png(fig)


def chart_spend(region_year, year: int | None) -> str:
    """Stacked bars: each region's spend per priority area as a share of its grant, latest report year."""
    title = "Medlens fördelning på de tre prioriterade områdena"
    if year is None:
        return _placeholder(title, "Inga regionrapporter ännu")
    plt = _plt()
    frame = region_year[region_year["year"] == year].sort_values("region_code", ascending=False)
    fig, ax = plt.subplots(figsize=(10, 0.38 * len(frame) + 1.8))
    names = list(frame["region_name"])
    left = [0.0] * len(frame)
    for area in AREAS:
        shares = [0.0 if v is None else float(v) * 100 for v in _values(frame[f"share_{area}"])]
        ax.barh(names, shares, left=left, color=AREA_COLOURS[area], label=AREA_SV[area], height=0.7)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    unknown = [
        any(v is None for v in values) for values in zip(*(_values(frame[f"share_{a}"]) for a in AREAS), strict=True)
    ]
    for i, (reported, incomplete) in enumerate(zip(frame["reported"], unknown, strict=True)):
        if not reported:
            ax.text(1, i, "ej rapporterat", va="center", fontsize=9, color="#666666")
        elif incomplete:
            ax.text(left[i] + 1, i, "ofullständigt", va="center", fontsize=9, color="#666666")
    ax.axvline(100, color="#333333", linewidth=0.8, linestyle=":")
    ax.set_xlim(0, max(110, max(left) + 15))
    ax.set_xlabel("Andel av erhållna medel (%)")
    ax.set_title(f"{title}, {year}", loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / (0.38 * len(frame) + 1.8)), ncol=3, frameon=False)
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    fig.tight_layout()
    return _png(fig)


def chart_offers(region_year, year: int | None) -> str:
    """A grid of regions × the programmes (the offers of the county report) for the latest report year: yes / no / not reported."""
    title = "Regionernas satsningar"
    if year is None:
        return _placeholder(title, "Inga regionrapporter ännu")
    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    frame = region_year[region_year["year"] == year].sort_values("region_code")
    codes: dict[bool | None, int] = {True: 2, False: 1}  # None (not reported): 0
    columns = [_values(frame[flag]) for flag in FLAGS]
    grid = [[codes.get(None if v is None else bool(v), 0) for v in row] for row in zip(*columns, strict=True)]
    fig, ax = plt.subplots(figsize=(9.5, 0.36 * len(frame) + 2.2))
    ax.imshow(grid, cmap=ListedColormap([UNKNOWN, NO, YES]), vmin=0, vmax=2, aspect="auto")
    text = {2: ("Ja", "white"), 1: ("Nej", "black"), 0: ("–", "#555555")}
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            label, colour = text[value]
            ax.text(j, i, label, ha="center", va="center", fontsize=9, color=colour)
    ax.set_xticks(range(len(FLAGS)), [_grid_label(f) for f in FLAGS])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(frame)), list(frame["region_name"]))
    ax.set_xticks([x - 0.5 for x in range(1, len(FLAGS))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(frame))], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{title} {year}: erbjuder regionen …?", loc="left", pad=40)
    ax.legend(
        handles=[
            Patch(color=YES, label="Ja"),
            Patch(color=NO, label="Nej"),
            Patch(color=UNKNOWN, label="Ej rapporterat / ej besvarat"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=3,
        frameon=False,
    )
    fig.tight_layout()
    return _png(fig)


def chart_offers_trend(national_year) -> str:
    """How many regions offer each programme, per year, out of those that answered."""
    title = "Antal regioner som erbjuder respektive satsning, per år"
    frame = national_year.sort_values("year")
    reported = frame.loc[frame["regions_reported"] > 0, "year"]
    if not len(reported):
        return _placeholder(title, "Inga regionrapporter ännu")
    # Years after the last report year (population or e-health data only) would read as "0 regions".
    frame = frame[(frame["year"] >= reported.min()) & (frame["year"] <= reported.max())]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    years = [int(y) for y in frame["year"]]
    for flag, colour in zip(FLAGS, itertools.cycle(OKABE_ITO)):
        values = [float("nan") if v is None else int(v) for v in _values(frame[f"regions_{flag}"])]
        ax.plot(years, values, marker="o", color=colour, label=FLAG_SV[flag])
    ax.plot(
        years,
        [int(v) for v in frame["regions_reported"]],
        color="#666666",
        linestyle=":",
        marker=".",
        label="Regioner som rapporterat",
    )
    total = int(frame["regions_total"].max())
    from matplotlib.ticker import MaxNLocator

    ax.set_ylim(0, total + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xticks(years)
    ax.set_xlabel("År")
    ax.set_ylabel(f"Antal regioner (av {total})")
    ax.set_title(title, loc="left")
    ax.grid(axis="y", color="#eeeeee")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return _png(fig)


NATIONAL_TABLE = (
    ("year", "År", 0, False),
    ("regions_reported", "Regioner som rapporterat", 0, False),
    ("population", "Folkmängd", 0, False),
    ("grant_sek", "Erhållna medel (kr)", 0, False),
    ("grant_per_inhabitant", "Medel per invånare (kr)", 1, False),
    ("share_spent", "Använt av medlen", 1, True),
    # Soft hyphens (\u00ad) let the long compounds break, so the table fits a mail window.
    ("regions_offers_clinical_intro_year", "Erbjuder kliniskt introduktions\u00adår", 0, False),
    ("regions_offers_specialist_nurse_study_salary", "Erbjuder studielön specialist\u00adsjuksköterska", 0, False),
    ("regions_earmarked", "Öronmärkt", 0, False),
    ("journal_unique_users_per_1000_mean", "Journalen: unika anv. per 1 000 inv. (månadsmedel)", 1, False),
    ("web_booking_bookings_per_1000_mean", "Webbtidbok: bokningar per 1 000 inv. (månadsmedel)", 1, False),
    ("initiatives_new_due_to_grant", "Insatser nya tack vare medlen", 0, False),
)


# Columns of the national table that come from the regions' reports (the rest: SCB and the e-health exports).
FROM_REPORTS = {
    "regions_reported",
    "grant_sek",
    "grant_per_inhabitant",
    "share_spent",
    "regions_offers_clinical_intro_year",
    "regions_offers_specialist_nurse_study_salary",
    "regions_earmarked",
    "initiatives_new_due_to_grant",
}
NO_REPORTS = "inga rapporter"


def year_ranges(years) -> str:
    """2020, 2021, 2022, 2024 → '2020–2022 och 2024'."""
    spans: list[list[int]] = []
    for year in sorted(int(y) for y in years):
        if spans and year == spans[-1][1] + 1:
            spans[-1][1] = year
        else:
            spans.append([year, year])
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in spans]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " och " + parts[-1]


def _years_without_reports(national_year) -> list[int]:
    return sorted(int(y) for y in national_year.loc[national_year["regions_reported"] == 0, "year"])


def _national_table(national_year) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _, _ in NATIONAL_TABLE)
    body = []
    for _, row in national_year.sort_values("year").iterrows():
        cells = []
        unreported = int(row["regions_reported"]) == 0
        for column, _, decimals, percent in NATIONAL_TABLE:
            value = row[column]
            if column == "year":
                text = str(int(value))
            elif unreported and column in FROM_REPORTS:
                # No region reported that year: not "0 of 0" but said so (once per row; the rest a dash).
                text = NO_REPORTS if column == "regions_reported" else "–"
            elif column.startswith("regions_") and column != "regions_reported":
                answered = row.get(column.replace("regions_", "regions_answered_", 1))
                text = f"{fmt_number(value)} av {fmt_number(answered)}"
            else:
                text = fmt_number(value, decimals, percent)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    return table + _no_reports_note(national_year)


def _no_reports_note(national_year) -> str:
    """One sentence for the years that have data from SCB or the e-health exports but no region's report."""
    missing = _years_without_reports(national_year)
    if not missing:
        return ""
    if len(missing) == len(national_year):
        text = (
            "Ingen region har skickat in någon regionrapport ännu: kolumnerna som bygger på regionrapporterna "
            "visar 'inga rapporter' eller –."
        )
    else:
        text = (
            f"För {year_ranges(missing)} har ingen region skickat in någon regionrapport (ännu): raderna visar "
            "'inga rapporter' och – i kolumnerna som bygger på rapporterna (medel, satsningar, insatser). "
            "Folkmängden och e-tjänsternas nyttjande kommer från SCB och e-hälsoexporterna."
        )
    return f"<p class='no-reports'>{html.escape(text)}</p>"


def _figure(png: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


# --------------------------------------------------------------------------- per region and year

UNKNOWN_TEXT = "uppgift saknas"  # every unknown cell of the per-region tables: never 0, "Nej" or a blank
MONEY_QUERY = "sql/07_grant_and_spend_per_inhabitant.sql"
# The run command of the sql/ headers: from the project folder after `make demo`.
RUN_QUERY = ".venv/bin/duckdb -readonly -box warehouse/followup.duckdb < {query}"


@dataclass(frozen=True)
class Measure:
    """One region × year table: a column of ``followup_region_year`` (or of :data:`MONEY_QUERY`).

    ``name`` is the column's name in the database / the query (English, as the
    workbook's Kolumner sheet gives it); ``english`` a few English words when
    the schema has them; ``national`` the ``followup_national_year`` column of
    the Riket line (None: computed from the regions, :func:`money_per_region`).
    """

    name: str
    title: str
    english: str
    decimals: int
    national: str | None = None


MONEY_MEASURES: tuple[Measure, ...] = (
    Measure("grant_sek", "Erhållna medel (kr)", "grant received, SEK", 0),
    Measure("grant_per_inhabitant", "Erhållna medel per invånare (kr)", "grant per inhabitant, SEK", 1),
    *(
        Measure(f"spend_{area}_sek", f"Använt: {AREA_SV[area].lower()} (kr)", f"spent on {AREA_TEXT[area]}, SEK", 0)
        for area in AREAS
    ),
    *(
        Measure(
            f"{area}_per_inhabitant",
            f"Använt per invånare: {AREA_SV[area].lower()} (kr)",
            f"spent on {AREA_TEXT[area]}, SEK per inhabitant",
            1,
        )
        for area in AREAS
    ),
)
# One table per series the marts give per 1 000 inhabitants (etl.sources.ehealth_spec.SERIES): a new
# export kind's series is in the report with its declaration.
ADOPTION_MEASURES: tuple[Measure, ...] = tuple(
    Measure(
        f"{series.prefix}_per_1000_mean",
        HEADERS_REGION[f"{series.prefix}_per_1000_mean"],
        f"{series.export.title_en}: {series.export.metric(series.metric).en} per 1 000 inhabitants, monthly mean",
        1,
        national=f"{series.prefix}_per_1000_mean",
    )
    for series in SERIES
)


def money_per_region(region_year):
    """Kronor and kronor per inhabitant per region and year, and the Riket line per year.

    ``region_year``: a ``followup_region_year`` frame. Returns ``(regions,
    national)``: ``regions`` is ``region_year`` plus ``population_used``
    (the population of ``population_year_used``, the denominator of
    ``grant_per_inhabitant``) and ``<area>_per_inhabitant`` (spend on the
    area, SEK per inhabitant); ``national`` has one row per year with a
    region's report and the columns of :data:`MONEY_MEASURES`: kronor summed
    over the regions that stated them, per inhabitant = that sum / the
    population of the same regions. Unknown stays null (pandas NA). The same
    rule as :data:`MONEY_QUERY`, whose figures the tests compare.
    """
    import pandas as pd

    keys = ["region_code", "population_year_used"]
    frame = region_year.copy()
    frame["population_year_used"] = frame["population_year_used"].astype("Int64")
    lookup = frame[["region_code", "year", "population"]].rename(
        columns={"year": "population_year_used", "population": "population_used"}
    )
    lookup["population_year_used"] = lookup["population_year_used"].astype("Int64")
    frame = frame.merge(lookup.dropna(subset=["population_used"]), on=keys, how="left")
    population = pd.to_numeric(frame["population_used"]).astype("Float64")
    known = population.notna() & (population > 0)

    def per_inhabitant(column: str):
        value = pd.to_numeric(frame[column]).astype("Float64")
        return (value / population).where(value.notna() & known)

    for area in AREAS:
        frame[f"{area}_per_inhabitant"] = per_inhabitant(f"spend_{area}_sek")
    frame["grant_per_inhabitant"] = pd.to_numeric(frame["grant_per_inhabitant"]).astype("Float64")

    reporting = frame[frame["reported"].astype(bool)]
    rows = []
    for year, group in reporting.groupby("year", sort=True):
        row: dict[str, object] = {"year": int(year)}
        for kronor, rate in (
            ("grant_sek", "grant_per_inhabitant"),
            *((f"spend_{a}_sek", f"{a}_per_inhabitant") for a in AREAS),
        ):
            value = pd.to_numeric(group[kronor]).astype("Float64")
            pop = pd.to_numeric(group["population_used"]).astype("Float64")
            both = value.notna() & pop.notna() & (pop > 0)
            row[kronor] = value.sum() if value.notna().any() else pd.NA
            row[rate] = value[both].sum() / pop[both].sum() if both.any() else pd.NA
        rows.append(row)
    return frame, pd.DataFrame(rows, columns=["year", *(m.name for m in MONEY_MEASURES)])


def _known(value) -> bool:
    import pandas as pd

    return value is not None and not pd.isna(value)


def _cell(text: str | None) -> str:
    """A table cell; None is unknown, written out."""
    if text is None:
        return f"<td class='na'>{UNKNOWN_TEXT}</td>"
    return f"<td>{html.escape(text)}</td>"


def _number(value, decimals: int) -> str | None:
    return fmt_number(value, decimals) if _known(value) else None


def _yes_no(value) -> str | None:
    return None if not _known(value) else ("Ja" if bool(value) else "Nej")


def _grid(anchor: str, title: str, english: str, years: list[int], rows: list[tuple[str, list]], riket: list) -> str:
    """One region × year table: a row per region, the Riket line last; ``None`` cells are unknown."""
    head = "<th scope='col'>Region</th>" + "".join(f"<th scope='col'>{y}</th>" for y in years)
    body = [
        f"<tr><th scope='row'>{html.escape(name)}</th>{''.join(_cell(c) for c in cells)}</tr>" for name, cells in rows
    ]
    body.append(f"<tr class='riket'><th scope='row'>Riket</th>{''.join(_cell(c) for c in riket)}</tr>")
    return (
        f"<section class='measure' id='{anchor}'><div class='scroll'><table class='grid'>"
        f"<caption><b>{html.escape(title)}</b> <span class='en' lang='en'>{html.escape(english)}</span></caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></section>"
    )


def _measures(parts: list[str]) -> str:
    """Notes first, then the tables side by side where they fit (a printed page holds several narrow ones)."""
    notes = [p for p in parts if not p.startswith("<section")]
    grids = [p for p in parts if p.startswith("<section")]
    return "".join(notes) + (f"<div class='measures'>{''.join(grids)}</div>" if grids else "")


def _region_names(region_year) -> list[tuple[str, str]]:
    pairs = region_year[["region_code", "region_name"]].drop_duplicates().sort_values("region_code")
    return [(str(c), str(n)) for c, n in zip(pairs["region_code"], pairs["region_name"], strict=True)]


def _by_key(frame, column: str) -> dict[tuple[str, int], object]:
    if column not in frame.columns:
        return {}
    return {
        (str(c), int(y)): v for c, y, v in zip(frame["region_code"], frame["year"], _values(frame[column]), strict=True)
    }


def _report_years(national_year) -> list[int]:
    return sorted(int(y) for y in national_year.loc[national_year["regions_reported"] > 0, "year"])


def _no_report_years_note(national_year) -> str:
    missing = _years_without_reports(national_year)
    if not missing or len(missing) == len(national_year):
        return ""
    return (
        f"<p class='note'>Åren {html.escape(year_ranges(missing))} visas inte: ingen region har skickat in "
        "någon regionrapport för dem (ännu).</p>"
    )


def money_tables(region_year, national_year) -> str:
    """The grant and the spend per area, kronor and kronor per inhabitant: a region × report-year table each."""
    years = _report_years(national_year)
    if not years:
        return "<p>Inga regionrapporter ännu.</p>"
    regions, national = money_per_region(region_year)
    names = _region_names(region_year)
    riket = {int(r["year"]): r for r in national.to_dict("records")}
    parts = [
        "<p>Belopp i kronor; <i>per invånare</i> delar med folkmängden det år som kolumnen "
        "<code>population_year_used</code> anger (samma år, eller senaste år SCB publicerat). Riket = summan av "
        "de regioner som angett beloppet, per invånare delat med just de regionernas folkmängd. Samma siffror: "
        f"<a href='#sql-07'>{MONEY_QUERY}</a>.</p>",
        _no_report_years_note(national_year),
    ]
    for measure in MONEY_MEASURES:
        values = _by_key(regions, measure.name)
        rows = [(name, [_number(values.get((code, y)), measure.decimals) for y in years]) for code, name in names]
        line = [_number(riket[y][measure.name], measure.decimals) for y in years]
        english = f"{measure.name} — {measure.english}"
        parts.append(_grid(f"t-{measure.name}", measure.title, english, years, rows, line))
    return _measures(parts)


def programme_tables(region_year, national_year) -> str:
    """The programmes (the offers of the county report): Ja / Nej / uppgift saknas per region and report year; Riket = ja av antal som svarat."""
    years = _report_years(national_year)
    if not years:
        return "<p>Inga regionrapporter ännu.</p>"
    names = _region_names(region_year)
    national = {int(r["year"]): r for r in national_year.to_dict("records")}
    parts = [_no_report_years_note(national_year)]
    for flag in FLAGS:
        values = _by_key(region_year, flag)
        rows = [(name, [_yes_no(values.get((code, y))) for y in years]) for code, name in names]
        line = []
        for y in years:
            yes, answered = national[y].get(f"regions_{flag}"), national[y].get(f"regions_answered_{flag}")
            ok = _known(answered) and int(answered) > 0 and _known(yes)
            line.append(f"{int(yes)} av {int(answered)}" if ok else None)
        english = f"{flag} — does the region {FLAG_TEXT[flag]}?"
        parts.append(_grid(f"t-{flag}", f"{FLAG_SV[flag]} per region och år", english, years, rows, line))
    return _measures(parts)


def adoption_tables(region_year, national_year) -> str:
    """Web booking and Journal via nätet per 1 000 inhabitants (monthly means): a region × year table each."""
    names = _region_names(region_year)
    national = {int(r["year"]): r for r in national_year.to_dict("records")}
    parts = []
    for measure in ADOPTION_MEASURES:
        values = _by_key(region_year, measure.name)
        assert measure.national is not None
        years = sorted(
            {y for (_, y), v in values.items() if _known(v)}
            | {y for y, r in national.items() if _known(r.get(measure.national))}
        )
        if not years:
            parts.append(f"<p>{html.escape(measure.title)}: inga uppgifter ännu.</p>")
            continue
        rows = [(name, [_number(values.get((code, y)), measure.decimals) for y in years]) for code, name in names]
        line = [_number(national.get(y, {}).get(measure.national), measure.decimals) for y in years]
        english = f"{measure.name} — {measure.english}"
        parts.append(_grid(f"t-{measure.name}", measure.title, english, years, rows, line))
    return _measures(parts)


# --------------------------------------------------------------------------- the summary and its queries


def summary_section(national_year) -> str:
    """The Sammanfattning: :func:`etl.marts.summary.summarise`'s sentences, each linked to its query's entry."""
    drafted = summary_rules.summarise(national_year)
    if drafted.year is None:
        return "<p>Ingen region har skickat in någon regionrapport ännu: det finns inget att sammanfatta.</p>"
    items = []
    for s in drafted.sentences:
        where = f"raden year = {s.year}, question = '{s.question}'"
        items.append(
            f"<li data-question='{html.escape(s.question)}' data-year='{s.year}'>{html.escape(s.text)} "
            f"<a class='src' href='#sql-06' title='{html.escape(where)}'>{html.escape(s.query)}</a></li>"
        )
    return (
        f"<p>Rapportår <b>{drafted.year}</b>. Meningarna skrivs av programmet ur <code>followup_national_year</code> "
        f"efter kvantorstabellen i <code>{summary_rules.RULES_DOC}</code>: andelen räknas av de regioner som svarat, "
        "och en region som inte svarat räknas aldrig som nej. Varje siffra är en rad i frågan som meningen länkar "
        "till.</p>"
        f"<ul class='summary'>{''.join(items)}</ul>"
    )


QUERIES = (
    (
        "sql-06",
        summary_rules.QUERY,
        "Sammanfattningens siffror: raden med meningens år och question (t.ex. offers_clinical_intro_year) ger "
        "yes, answered och not_answered — '10 av 21' är yes av answered.",
    ),
    (
        "sql-07",
        MONEY_QUERY,
        "Tabellerna över medel per region och år: kronor och kronor per invånare per område, och raden Riket.",
    ),
)


def queries_section() -> str:
    """Where the report's figures come from: the sql/ queries, with the command that runs each."""
    items = "".join(
        f"<dt id='{anchor}'><code>{html.escape(query)}</code></dt><dd>{html.escape(text)} Kör i projektets mapp: "
        f"<code>{html.escape(RUN_QUERY.format(query=query))}</code></dd>"
        for anchor, query, text in QUERIES
    )
    return (
        "<p>Frågorna ligger i mappen <code>sql/</code> i projektet och läser <code>followup.duckdb</code> "
        "(<code>warehouse/followup.duckdb</code> efter <code>make demo</code>; annars er lagringsplats). De ger "
        "samma siffror som rapporten när databasen visar samma tabellversioner; en rapport tagen per ett datum "
        "(<code>.venv/bin/python -m etl report --as-of</code>) bygger på versionerna i <i>Datakällornas aktualitet</i>.</p>"
        f"<dl class='queries'>{items}</dl>"
    )


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
section.measure{display:inline-block;vertical-align:top;max-width:100%;margin:0 1.5em .8em 0}
caption{text-align:left;padding:.3em 0;font-size:1.05em}.en{display:block;width:0;min-width:100%;font-size:.8em;color:#666}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .5em;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child{text-align:left}
.scroll{overflow-x:auto}th{font-weight:600;hyphens:manual}
.caveat{background:#fff7e0;border-left:4px solid #E69F00;padding:.6em 1em}.notes td{text-align:left}
table.grid{margin:.5em 0;font-size:.8em;font-variant-numeric:tabular-nums}table.grid th[scope=row]{text-align:left;
font-weight:400;background:#fff;white-space:nowrap;position:sticky;left:0}
td.na{color:#777;font-style:italic;font-size:.85em}tr.riket th,tr.riket td{font-weight:600;border-top:2px solid #777;
background:#f7f7f7}ul.summary li{margin:.35em 0}a.src{font-size:.8em;color:#555;white-space:nowrap}
nav.toc{margin-top:1em}nav.toc ol{columns:2;font-size:.9em}.note{color:#555;font-size:.9em}dl.queries dt{margin-top:.6em}
@media print{
.measures{orphans:1;widows:1}
@page{size:A4 landscape;margin:12mm 10mm 14mm}
body{max-width:none;margin:0;padding:0;font-size:9pt}img{max-height:170mm;width:auto}
.scroll{overflow:visible}table.grid th[scope=row]{position:static}table.grid{font-size:8pt}
table.grid th,table.grid td{padding:1px 5px}
thead{display:table-header-group}tr,figure,img,li{break-inside:avoid}
h2{break-after:avoid}section.measure{break-inside:avoid}section.part{break-before:page}
a{color:inherit;text-decoration:none}nav.toc{display:none}
}
"""


CONTENTS = (
    ("sammanfattning", "Sammanfattning"),
    ("riket", "Riket per år"),
    ("satsningar", "Satsningar per region och år"),
    ("medel", "Medel per region och år: kronor och per invånare"),
    ("e-tjanster", "Webbtidbok och Journalen per 1 000 invånare"),
    ("fragor", "Frågorna bakom siffrorna och datakällorna"),
)


def _contents() -> str:
    items = "".join(f"<li><a href='#{anchor}'>{html.escape(text)}</a></li>" for anchor, text in CONTENTS)
    return f"<nav class='toc'><b>Innehåll</b><ol>{items}</ol></nav>"


def _footnotes(footnotes: list[str], heading: str = APPROVED_HEADING) -> str:
    if not footnotes:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in footnotes)
    return f"<h2>{html.escape(heading)}</h2><ol class='notes'>{items}</ol>"


SUPERSEDED_HEADING = "Ersatta regionrapporter (en senare rapport för samma region och år gäller)"


def render(
    region_year,
    national_year,
    monthly,
    vintage: list[dict],
    synthetic: bool,
    today: dt.date,
    footnotes: Sequence[str] = (),
    superseded: Sequence[str] = (),
) -> str:
    """The report page (HTML text, Swedish, self-contained).

    ``region_year`` / ``national_year``: the ``followup_region_year`` and
    ``followup_national_year`` frames (published, or built as of a date —
    the summary, tables and charts all read these two); ``monthly``: the
    per-1 000 series of :class:`etl.marts.followup.Marts`; ``vintage``: each
    table's version and times; ``footnotes`` name deliveries published on
    approval although blocked; ``superseded`` the county reports a later one
    replaced (:func:`etl.status.superseded_reports`).
    """
    # Size: the report's sections in reading order.
    names = dict(zip(region_year["region_code"], region_year["region_name"], strict=True))
    year = _latest_report_year(national_year)
    notes = notes_rows(vintage, synthetic, today)
    caveats = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in notes[4:10])
    vintage_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in notes[12:])
    latest = f"{year}" if year is not None else "–"
    parts = [
        "<!doctype html><html lang='sv'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>Uppföljning av statsbidraget – {today.isoformat()}</title><style>{STYLE}</style></head><body>",
        "<h1>Uppföljning av statsbidraget till regionerna</h1>",
        f"<p>Skapad {today.isoformat()}. Senaste rapportår med regionrapporter: <b>{latest}</b>. "
        "Underlag: tabellerna <code>followup_region_year</code> och <code>followup_national_year</code> "
        "(öppna <code>followup.duckdb</code> eller Excel-filen i samma mapp för alla siffror).</p>",
        f"<div class='caveat'><table class='notes'>{caveats}</table></div>",
        _contents(),
        "<section id='sammanfattning'>",
        "<h2>Sammanfattning</h2>",
        summary_section(national_year),
        "</section><section id='riket'>",
        "<h2>Riket per år</h2>",
        "<p>Antal regioner anges som <i>ja av antal som svarat</i>; en region som inte rapporterat räknas inte "
        "som nej.</p>",
        _national_table(national_year),
        "</section><section class='part' id='satsningar'>",
        "<h2>Satsningar per region</h2>",
        _figure(
            chart_offers(region_year, year),
            "Rutnät: regioner och satsningarna",
            "Blått = ja, orange = nej, grått = ej rapporterat eller ej besvarat.",
        ),
        _figure(
            chart_offers_trend(national_year),
            "Linjediagram: antal regioner per satsning och år",
            "Antal regioner som svarat ja, per år; den prickade linjen visar hur många som rapporterat alls.",
        ),
        "<p>Per region och år: <i>Ja</i>, <i>Nej</i> eller <i>uppgift saknas</i> (regionen har inte rapporterat "
        "eller inte svarat). Riket = antal ja av antal som svarat.</p>",
        programme_tables(region_year, national_year),
        "</section><section class='part' id='medel'>",
        "<h2>Medlens fördelning</h2>",
        _figure(
            chart_spend(region_year, year),
            "Staplar: andel av medlen per område och region",
            "Använda medel per prioriterat område som andel av regionens erhållna medel. Upp till 101 % "
            "godtas; 'ofullständigt' = något område saknar uppgift.",
        ),
        money_tables(region_year, national_year),
        "</section><section class='part' id='e-tjanster'>",
        "<h2>Nyttjande av e-tjänsterna</h2>",
        "<p>Månadsmedel per 1 000 invånare över månaderna med värde (skyddade månader ingår inte). Riket = "
        "exporternas riksvärden.</p>",
        adoption_tables(region_year, national_year),
        _figure(
            chart_adoption(monthly, names),
            "Små diagram: Journalens unika användare per region och månad",
            "Unika användare av Journalen per månad per 1 000 invånare; streckad linje = riket. "
            "Skyddade månader saknas i kurvan.",
        ),
        "</section><section class='part' id='fragor'>",
        "<h2>Frågorna bakom siffrorna</h2>",
        queries_section(),
        "<h2>Datakällornas aktualitet</h2>",
        f"<table class='notes'>{vintage_rows}</table>",
        _footnotes(list(footnotes)),
        _footnotes(list(superseded), SUPERSEDED_HEADING),
        "</section>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    warehouse_uri: str,
    region_year,
    national_year,
    monthly,
    vintage: list[dict],
    synthetic: bool,
    today: dt.date,
    footnotes: Sequence[str] = (),
    superseded: Sequence[str] = (),
) -> str:
    """:func:`render` written atomically to ``<warehouse>/exports/followup_report.html``; returns its URI."""
    uri = storage.join(warehouse_uri, EXPORTS, REPORT_FILE)
    page = render(region_year, national_year, monthly, vintage, synthetic, today, footnotes, superseded)
    write_bytes_atomic(uri, page.encode("utf-8"))
    return uri
