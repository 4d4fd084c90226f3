"""Reference data pipeline: the region dimension (and, from the public APIs, population and key figures).

``dim_region`` is built from :mod:`etl.regions`, the one region module.
"""

from __future__ import annotations

import logging

from etl import publish, regions
from etl.config import Settings
from etl.pipelines.common import RunReport, checked_batch

log = logging.getLogger(__name__)

PIPELINE = "reference"


def build_dim_region(settings: Settings, batch_id: str) -> publish.PublishResult:
    import pandas as pd

    rows = pd.DataFrame(
        [
            {
                "region_code": r.code,
                "region_name": r.region_name,
                "county_name": r.county_name,
                "kolada_id": r.kolada_id,
                "source_file": "etl/regions.py",
                "row_number": i + 1,
                "raw": r.region_name,
            }
            for i, r in enumerate(regions.REGIONS)
        ]
    )
    batch = checked_batch(
        "dim_region", rows, [], len(rows), None, warehouse_uri=settings.warehouse_uri, batch_id=batch_id
    )
    return publish.publish(settings.warehouse_uri, PIPELINE, batch, batch_id, [])


def run(settings: Settings, *, year: int | None = None, **_: object) -> RunReport:
    batch_id = publish.new_batch_id()
    report = RunReport(PIPELINE, batch_id)
    report.results.append(build_dim_region(settings, batch_id))
    return report
