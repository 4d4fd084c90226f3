"""Synthetic sample input in the exact input formats, for demos and tests (`python -m etl sample`)."""
