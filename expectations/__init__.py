"""The GX Core 1.x expectation suites, one ``<table>.json`` per table: the data contracts.

Kept at the top of the repository (reviewed like code) and installed as the
package data ``etl.expectations`` (pyproject.toml maps the package to this
folder), so ``etl.validation`` reads them with :mod:`importlib.resources`
from a checkout installed editable and from the wheel alike.
"""
