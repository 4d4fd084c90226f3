# The project's Airflow image: the official Airflow 3.3.2 image plus the
# pipeline's pinned requirements and code. Used by docker-compose.yml.
#
# The base tag's Airflow version must equal the apache-airflow pin in
# requirements.txt (tests/test_compose.py checks it): pip would otherwise
# up- or downgrade Airflow inside the image.
FROM apache/airflow:3.3.2-python3.11

# The official image installs into the airflow user's environment; pip as root is refused there.
USER airflow

COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/project/
# constraints.txt is the full lock of the tested environment, so the image
# runs the same versions as `make test`.
RUN pip install --no-cache-dir \
        -r /opt/airflow/project/requirements.txt \
        -c /opt/airflow/project/constraints.txt

# The code is baked in so the image runs on its own; docker-compose.yml also
# mounts dags/, etl/ and expectations/ read-only over it for quick edits.
COPY --chown=airflow:0 etl /opt/airflow/project/etl
COPY --chown=airflow:0 expectations /opt/airflow/project/expectations
COPY --chown=airflow:0 scripts/airflow_init.py /opt/airflow/project/scripts/airflow_init.py
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins

ENV PYTHONPATH=/opt/airflow/project \
    GX_ANALYTICS_ENABLED=false
