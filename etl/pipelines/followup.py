"""Follow-up pipeline: the two marts analysts query, and the ways they reach them.

``build_marts`` reads the published source tables (never raw input),
computes ``followup_region_year`` and ``followup_national_year``
(:mod:`etl.marts.followup`), validates them with their GX suites and
publishes them. ``build_access`` then writes, under the warehouse:

* ``followup.duckdb`` — one DuckDB view per published table (:mod:`etl.marts.access`);
* ``exports/followup_<YYYYMMDD>.xlsx`` and ``exports/followup_latest.xlsx`` (:mod:`etl.marts.exports`);
* ``exports/followup_report.html`` — the self-contained report (:mod:`etl.marts.report`).

**Full rebuild, not merge** (``merge_keys=None``): every mart row depends on
many source rows across tables and years — a corrected population changes
every per-1 000 figure of that region, a correction of one year changes the
next year's change columns — so working out which rows a source change
touches would be a second, fragile copy of the mart logic. The marts are
small (21 rows a year), rebuilding them takes well under a second, and
``publish`` compares content: a rebuild that changes nothing makes no new
version and logs ``unchanged``. A rebuild also guarantees no stale row
survives a row removed upstream.

**Validation policy.** A mart has no input rows to quarantine: a row that
breaks its suite is a bug upstream or here, and publishing the mart with a
region missing would be worse than keeping yesterday's. So for the marts
every *critical* expectation — row-level or not — blocks the publish
(:class:`ValidationFailed`, logged in the load log); warnings are logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
from collections.abc import Callable

from etl import approvals, expectation_suites, publish, schemas, status, storage, validation
from etl.config import Settings
from etl.errors import EtlError, NotReady, ValidationFailed
from etl.marts import MART_INPUTS, MART_TABLES, SOURCE_TABLES
from etl.pipelines import skeleton
from etl.pipelines.common import (
    Progress,
    RunReport,
    record_nothing_new,
    records_unexpected_failures,
    rejected_frame,
    start_run,
)
from etl.privacy import redact_uri

log = logging.getLogger(__name__)

PIPELINE = "followup"
# The marts this process last computed, by (warehouse, the source table versions they came from):
# build_access right after build_marts in one process (the CLI's run, the demo) takes the monthly series
# from them instead of reading every source table and computing the marts a second time.
_computed: dict[tuple[str, str], object] = {}
SAMPLE_MARKER = ".sample-args"  # written by scripts/demo.py next to generated sample data


def _nullable_frame(table):
    """A pyarrow table → pandas with nullable dtypes, so a null stays a null (not NaN, not False)."""
    import pandas as pd
    import pyarrow as pa

    mapping = {
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.float64(): pd.Float64Dtype(),
        pa.string(): pd.StringDtype(),
    }
    return table.to_pandas(types_mapper=mapping.get)


def table_versions(warehouse_uri: str) -> dict[str, dict]:
    """Latest committed load per table from the load log: its version, when it last changed and was checked."""
    latest: dict[str, dict] = {}
    for row in sorted(publish.read_load_log(warehouse_uri).to_pylist(), key=lambda r: r["finished_at"]):
        if row["table_name"] is None or row["outcome"] not in {"published", "unchanged"}:
            continue
        entry = latest.setdefault(row["table_name"], {"table": row["table_name"]})
        entry.update(
            checked_at=row["finished_at"],
            version=row["table_version"],
            pipeline=row["pipeline"],
            batch_id=row["batch_id"],
        )
        if row["outcome"] == "published":
            entry["changed_at"] = row["finished_at"]
    return latest


def _source_frame(table, name: str):
    """A source table's content columns as pandas, in the order of its key.

    The order of rows read back depends on how the table's files lie (a
    compaction or a partition rewrite changes it), and summing floats in
    another order changes the last digit: sorted, the same content always
    gives the same marts, so an unchanged source never publishes a new mart
    version.
    """
    schema = schemas.get(name)
    order = list(schema.key) or schema.business_columns
    return _nullable_frame(table.select(schema.business_columns).sort_by([(c, "ascending") for c in order]))


def read_sources(warehouse_uri: str) -> tuple[dict, list[str]]:
    """The mart inputs as pandas frames (empty, with their columns, when not published) and what is missing."""
    frames, missing = {}, []
    for name in MART_INPUTS:
        if status.table_rows(warehouse_uri, name) is None:
            missing.append(name)
        frames[name] = _source_frame(publish.read_table(warehouse_uri, name), name)
    return frames, missing


def _lineage(versions: dict[str, dict]) -> str:
    """source_file of a mart row: the source table versions it was computed from."""
    parts = [f"{name}@{versions[name]['version']}" for name in MART_INPUTS if name in versions]
    return "mart:" + ",".join(parts)


def _validate(table: str, frame, batch_id: str, warehouse_uri: str) -> validation.Validation:
    """Run the table's suite on the conformed frame; any critical failure blocks (see module docstring)."""
    schema = schemas.get(table)
    stamped = frame.assign(source_file="-", batch_id=batch_id, loaded_at=publish.utcnow())
    checked = schemas.conform(schema, stamped).to_pandas()  # plain dtypes: what GX's pandas engine expects
    if table == "followup_region_year":
        checked["_check_regions_in_year"] = checked.groupby("year")["region_code"].transform("count")
        total = checked["initiatives_total"]
        checked["_check_initiatives_not_new"] = (
            total - checked["initiatives_new_due_to_grant"] - checked["initiatives_new_unknown"]
        )
    checked[expectation_suites.ROW_ID] = range(len(checked))
    result = validation.validate(table, checked, warehouse_uri=warehouse_uri, batch_id=batch_id)
    problems = list(result.critical)
    if result.failed_rows:
        by_reason: dict[str, list[str]] = {}
        for row, reasons in sorted(result.failed_rows.items()):
            where = "/".join(str(checked.loc[row, k]) for k in schema.key)
            for reason in reasons:
                by_reason.setdefault(reason, []).append(where)
        problems += [f"{reason} ({len(rows)} row(s), e.g. {', '.join(rows[:3])})" for reason, rows in by_reason.items()]
    if problems:
        raise ValidationFailed(f"{table}: validation failed, nothing published: " + " | ".join(problems))
    return result


def build_marts(
    settings: Settings, batch_id: str | None = None, *, access: Callable[[RunReport], bool] | None = None
) -> RunReport:
    """Compute, validate and publish both marts (all or nothing: the second is not published if the first fails).

    ``access`` (see :attr:`etl.pipelines.skeleton.Plan.finish`) builds the analysts' access once the
    marts are settled and says whether that refreshed the views; without it the views are refreshed here.
    """
    report = start_run(settings.warehouse_uri, PIPELINE, batch_id)
    plan = plan_marts(settings, report)
    plan.finish = access
    return skeleton.execute(settings, report, plan)


def plan_marts(settings: Settings, report: RunReport) -> skeleton.Plan:
    """One step publishing both marts, or nothing new when the published marts reflect the sources.

    Raises :class:`NotReady` (with its load-log row, ``nothing_new``) when ``dim_region`` is not published.
    """
    from etl.marts import followup as mart

    warehouse = settings.warehouse_uri
    sources, missing = read_sources(warehouse)
    if "dim_region" in missing or not len(sources["dim_region"]):
        # Not a failure of the marts: nothing to build on yet. Publishing dim_region (a source table's Asset)
        # schedules the follow-up DAG again; the load log says why this run built nothing.
        message = (
            "dim_region is not published: run the reference pipeline first (.venv/bin/python -m etl run reference)"
        )
        record_nothing_new(warehouse, PIPELINE, report.batch_id, f"not built: {message}")
        raise NotReady(message)
    if missing:
        report.messages.append(f"not published yet, their columns are null: {', '.join(missing)}")
    versions = table_versions(warehouse)
    lineage = _lineage(versions)
    if _marts_reflect(warehouse, lineage):
        # Same source versions as the published marts were built from: rebuilding
        # would give the same rows, so a run with nothing new costs a load-log read.
        return skeleton.Plan(
            nothing_new="nothing new: the marts are already built from the current source table versions"
        )
    sources_log = [
        (storage.join(warehouse, name) + f"@{versions[name]['version']}", None)
        for name in MART_INPUTS
        if name in versions
    ]
    marts = mart.build(sources)
    _computed.clear()
    _computed[(warehouse, lineage)] = marts
    if not len(marts.region_year):
        return skeleton.Plan(nothing_new="no years in any source table: nothing to build")
    frames = {"followup_region_year": marts.region_year, "followup_national_year": marts.national_year}

    def judge_marts(step: skeleton.Step) -> skeleton.Judgement:
        judged = skeleton.Judgement()
        step.sources = sources_log
        results = {}
        for table, frame in frames.items():  # both validated before either is published
            step.table, step.rows_in = table, len(frame)
            results[table] = _validate(table, frame, step.batch_id, warehouse)
        for table, frame in frames.items():
            schema = schemas.get(table)
            rows = frame[schema.business_columns].assign(source_file=lineage)
            batch = publish.TableBatch(
                table=table,
                rows=rows,
                quarantine=rejected_frame([]),
                rows_in=len(rows),
                merge_keys=schema.replaced_by,  # None: a full rebuild, declared on the mart
                warnings=[*marts.warnings, *results[table].warnings],
                validation=results[table].outcome,
            )
            judged.batches.append((batch, sources_log))
        return judged

    return skeleton.Plan(steps=[skeleton.Step("marts", report.batch_id, judge_marts)])


def _marts_reflect(warehouse_uri: str, lineage: str) -> bool:
    """True when both marts are published, in their declared shape, and computed from exactly these source
    versions (a mart whose declaration gained a column is rebuilt)."""
    for table in MART_TABLES:
        stored = publish.stored_schema(warehouse_uri, table)
        if stored is None or set(schemas.get(table).arrow_schema.names) - set(stored.names):
            return False
        built_from = publish.read_table(warehouse_uri, table).column("source_file").unique().to_pylist()
        if built_from != [lineage]:
            return False
    return True


def _access_built(warehouse_uri: str) -> bool:
    fs, root = storage.filesystem(warehouse_uri)
    return all(fs.exists(f"{root}/{path}") for path in ("followup.duckdb", "exports/followup_report.html"))


def _is_sample(settings: Settings) -> bool:
    try:
        fs, root = storage.filesystem(settings.landing_uri)
        return fs.exists(posixpath.join(root, SAMPLE_MARKER))
    except Exception:  # landing unreachable: the notes then say the origin is not known
        return False


def build_access(settings: Settings, today: dt.date | None = None) -> dict[str, str]:
    """followup.duckdb, the Excel workbook and the HTML report; returns their URIs."""
    from etl.marts import access, exports, report

    warehouse = settings.warehouse_uri
    today = today or dt.datetime.now(dt.UTC).date()
    progress = Progress(PIPELINE, 3, "outputs")  # the views, the workbook, the report
    paths = {"duckdb": access.build_duckdb(warehouse)}
    progress.step(note="followup.duckdb")
    if any(status.table_rows(warehouse, t) is None for t in MART_TABLES):
        log.warning("the marts are not published yet: no workbook or report")
        return paths
    region_year = _nullable_frame(publish.read_table(warehouse, "followup_region_year"))
    national_year = _nullable_frame(publish.read_table(warehouse, "followup_national_year"))
    versions = table_versions(warehouse)
    vintage = [versions.get(t, {"table": t}) for t in (*SOURCE_TABLES, *MART_TABLES)]
    synthetic = _is_sample(settings)
    footnotes = approvals.footnotes(warehouse)
    paths.update(exports.write_workbooks(warehouse, region_year, national_year, vintage, synthetic, today, footnotes))
    progress.step(note="workbook")
    # The monthly series are not a published table: from the marts computed for these source versions.
    marts = _computed.get((warehouse, _lineage(versions)))
    if marts is None:
        from etl.marts import followup as mart

        marts = mart.build(read_sources(warehouse)[0])
    monthly = marts.monthly  # type: ignore[attr-defined]
    paths["report"] = report.write_report(
        warehouse,
        region_year,
        national_year,
        monthly,
        vintage,
        synthetic,
        today,
        footnotes,
        status.superseded_reports(warehouse),
    )
    progress.step(note="report")
    return paths


def build_as_of(settings: Settings, when: dt.datetime, out_dir: str) -> dict[str, str]:
    """The HTML report and the workbook as they would have been built from the tables current at ``when``.

    Reads each source table at its version current at ``when`` (Delta time
    travel), computes the marts in memory (nothing is published) and writes
    ``followup_report_as_of_<UTC timestamp>.html`` and ``followup_as_of_<UTC timestamp>.xlsx`` into
    ``out_dir``; both state the table versions they were built from. Raises
    :class:`EtlError` with one line when a version's history or files are no
    longer kept (retention), when nothing was published by then, or when the warehouse has no
    ``dim_region`` table at all (a wrong warehouse URI).
    """
    from etl.marts import exports, report
    from etl.marts import followup as mart

    warehouse = settings.warehouse_uri
    frames, vintage = {}, []
    for name in MART_INPUTS:
        schema = schemas.get(name)
        found = publish.version_at(warehouse, name, when)
        if found is None:
            frames[name] = _nullable_frame(schema.arrow_schema.empty_table().select(schema.business_columns))
            continue
        version, committed = found
        frames[name] = _source_frame(publish.read_table(warehouse, name, version=version), name)
        vintage.append({"table": name, "version": str(version), "changed_at": committed, "checked_at": committed})
    if not len(frames["dim_region"]):
        if publish.table_rows(warehouse, "dim_region") is None:  # not late: never published there at all
            raise EtlError(
                f"nothing is published in {redact_uri(warehouse)}: it has no dim_region table "
                "(a wrong --warehouse or ETL_WAREHOUSE_URI?)"
            )
        raise EtlError(f"nothing was published by {when:%Y-%m-%d %H:%M} UTC (dim_region has no version then)")
    marts = mart.build(frames)
    day = when.date()
    synthetic = _is_sample(settings)
    region_year, national_year = (
        _typed(marts.region_year, "followup_region_year"),
        _typed(marts.national_year, "followup_national_year"),
    )
    fs, root = storage.filesystem(out_dir)
    storage.make_folder(fs, root)
    stamp = when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")  # two as-of times a day: two files
    workbook = storage.join(out_dir, f"followup_as_of_{stamp}.xlsx")
    page = storage.join(out_dir, f"followup_report_as_of_{stamp}.html")
    footnotes = approvals.footnotes(warehouse, until=when)
    exports.write_bytes_atomic(
        workbook, exports.build_workbook(region_year, national_year, vintage, synthetic, day, footnotes)
    )
    exports.write_bytes_atomic(
        page,
        report.render(
            region_year,
            national_year,
            marts.monthly,
            vintage,
            synthetic,
            day,
            footnotes,
            status.superseded_reports(warehouse, until=when),
        ).encode("utf-8"),
    )
    return {"workbook": workbook, "report": page}


def _typed(frame, table: str):
    """A computed mart frame as the published table would read back (schema types, nullable dtypes)."""
    schema = schemas.get(table)
    stamped = frame.assign(source_file="as-of", batch_id="as-of", loaded_at=publish.utcnow())
    return _nullable_frame(schemas.conform(schema, stamped))


def refresh_access(settings: Settings, marts_outcome: str) -> dict[str, str]:
    """Rebuild analyst access unless the marts did not change and it is already there."""
    if marts_outcome == "nothing_new" and _access_built(settings.warehouse_uri):
        return {}
    return build_access(settings)


def access_follows(report: RunReport) -> bool:
    """For :func:`build_marts` in the Airflow DAG: True when its next task, ``build_access``, rebuilds the views.

    :func:`refresh_access` rebuilds everything unless the marts were found unchanged with nothing
    new, so only then must the marts task refresh the views (its own load-log row) itself.
    """
    return report.outcome != "nothing_new"


@records_unexpected_failures(PIPELINE)
def run(settings: Settings) -> RunReport:
    """The marts (:func:`build_marts`), then the analysts' access to them (:func:`refresh_access`)."""
    paths: dict[str, str] = {}

    def access(report: RunReport) -> bool:
        paths.update(refresh_access(settings, report.outcome))
        return "duckdb" in paths  # built with the workbook and report: no second build of the views

    report = build_marts(settings, access=access)
    report.messages += [f"{kind}: {uri}" for kind, uri in paths.items()]
    return report
