"""Follow-up pipeline for the state–region health-care agreements.

A plain Python package: everything here runs without Airflow (CLI
``python -m etl``, tests); the DAGs in ``dags/`` only schedule and wire it.
"""

__version__ = "0.1.0"
