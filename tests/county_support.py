"""County-report tests' shared parts: the workbook builders of tests/fixtures/county and a fixed clock.

``builders`` is tests/fixtures/county/builders.py (loaded by path: the fixtures folder is not a package);
``T0`` a landing time (2018-03-01 09:00 UTC, epoch seconds) and ``DAY`` a day in seconds, for mtimes.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("county_builders", Path(__file__).parent / "fixtures/county/builders.py")
assert _spec is not None and _spec.loader is not None
builders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builders)

T0 = dt.datetime(2018, 3, 1, 9, 0, tzinfo=dt.UTC).timestamp()
DAY = 86_400
