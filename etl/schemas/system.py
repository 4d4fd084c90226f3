"""Tables the pipeline keeps about itself: quarantine and the load log."""

import pyarrow as pa

from etl.schemas.declaration import Column, TableSchema, table

QUARANTINE = table(
    TableSchema(
        name="_quarantine",
        domain="system",
        description=(
            "Input rows (or whole files) that broke the input contract or a row-level "
            "expectation, with the reason. Stored per table under `<warehouse>/_quarantine/<table>/`. "
            "Personal data is masked before it lands here."
        ),
        columns=(
            Column("table_name", pa.string(), "Output table the row was meant for.", False),
            Column(
                "row_number",
                pa.int64(),
                "Line (CSV, 1 = header), sheet row (xlsx) or item index (JSON); 0 = the whole file.",
                False,
            ),
            Column("raw", pa.string(), "The original row as text (masked), for a person to read.", True),
            Column("reason", pa.string(), "Why it was quarantined; several reasons joined with '; '.", False),
            Column("source_sha256", pa.string(), "SHA-256 of the source file.", True),
            Column(
                "rows_held",
                pa.int64(),
                "Rows this entry stands for: 1 for a row, the rows a whole rejected file or report held.",
                True,
            ),
        ),
        key=("source_file", "row_number", "table_name"),
        lineage=True,
    )
)

LOAD_LOG = table(
    TableSchema(
        name="_load_log",
        domain="system",
        description="One row per publish of a table (or per run that found nothing new): the audit trail.",
        columns=(
            Column("batch_id", pa.string(), "Identifier of the load batch.", False),
            Column(
                "pipeline",
                pa.string(),
                "Pipeline that ran (reference, county_reports, ehealth_adoption, followup), or migration (a table rewritten to a newer schema, or given a column its declaration gained: etl/migrations.py).",
                False,
            ),
            Column("table_name", pa.string(), "Table published (empty for a run with nothing new).", True),
            Column("source_files", pa.list_(pa.string()), "Source files (URIs) of the batch.", True),
            Column("source_sha256", pa.list_(pa.string()), "SHA-256 of each source file, same order.", True),
            Column("rows_in", pa.int64(), "Input rows read.", False),
            Column("rows_loaded", pa.int64(), "Rows published to the table.", False),
            Column("rows_quarantined", pa.int64(), "Rows sent to quarantine.", False),
            Column(
                "outcome",
                pa.string(),
                "published | unchanged | nothing_new | failed | blocked (a delivery held back whole) | approved | rejected (a person's decision on a blocked delivery: etl/approvals.py).",
                False,
            ),
            Column("validation", pa.string(), "passed | warning | failed | skipped.", False),
            Column("warnings", pa.string(), "Warnings from validation, '; '-joined.", True),
            Column("message", pa.string(), "Failure or summary message.", True),
            Column("table_version", pa.string(), "Table version after the publish.", True),
            Column("started_at", pa.timestamp("us", tz="UTC"), "Publish started (UTC).", False),
            Column("finished_at", pa.timestamp("us", tz="UTC"), "Publish finished (UTC).", False),
        ),
        key=("batch_id", "table_name"),
        lineage=False,
    )
)
