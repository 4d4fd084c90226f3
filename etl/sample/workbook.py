"""Sample workbooks as the same bytes on every run (``etl sample`` run again changes no file)."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile


def fixed_times(xlsx: bytes, when: dt.datetime) -> bytes:
    """The same workbook bytes on every run: openpyxl stamps 'now' into the zip and docProps/core.xml."""
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>" + stamp.encode() + rb"\2", data
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=when.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, data)
    return out.getvalue()
