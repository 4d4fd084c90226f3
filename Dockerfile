# The project's Airflow image: the official Airflow 3.3.2 image plus the
# pipeline's pinned requirements and the library, installed as a wheel.
# Used by docker-compose.yml.
#
# The base tag's Airflow version must equal the apache-airflow pin in
# requirements.txt (tests/test_compose.py checks it): pip would otherwise
# up- or downgrade Airflow inside the image.

# Stage 1: build the library's wheel (pyproject.toml; the GX suites in
# expectations/ go into it as the package data etl.expectations).
FROM apache/airflow:3.3.2-python3.11 AS wheel
USER airflow
COPY --chown=airflow:0 pyproject.toml README.md requirements.txt requirements-dev.txt /tmp/src/
COPY --chown=airflow:0 etl /tmp/src/etl
COPY --chown=airflow:0 expectations /tmp/src/expectations
# setuptools builds in the source tree: build a writable copy.
RUN cp -r /tmp/src /tmp/build \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist /tmp/build

# Stage 2: the image.
FROM apache/airflow:3.3.2-python3.11

# python-ldap (requirements-ldap.txt: the directory sign-in, deploy/webserver_config.py) compiles against
# OpenLDAP's headers.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libldap2-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*

# The official image installs into the airflow user's environment; pip as root is refused there.
USER airflow

COPY --chown=airflow:0 requirements.txt requirements-ldap.txt constraints.txt /opt/airflow/project/
# constraints.txt is the full lock of the tested environment, so the image
# runs the same versions as `make test`.
RUN pip install --no-cache-dir \
        -r /opt/airflow/project/requirements.txt \
        -r /opt/airflow/project/requirements-ldap.txt \
        -c /opt/airflow/project/constraints.txt

# The library is the wheel, not a source folder on PYTHONPATH: every task and
# DAG parse runs the version installed here (`etl --version` names it).
# Its dependencies are the pins installed above (--no-deps: nothing changes).
COPY --from=wheel /tmp/dist/ /tmp/dist/
RUN pip install --no-cache-dir --no-deps -c /opt/airflow/project/constraints.txt /tmp/dist/etl_followup-*.whl \
    && rm -rf /tmp/dist

# DAGs and plugins are baked in so the image runs on its own; docker-compose.yml
# also mounts dags/ and plugins/ read-only over them (the DAG bundle only:
# the library is never mounted).
COPY --chown=airflow:0 scripts/airflow_init.py /opt/airflow/project/scripts/airflow_init.py
# The directory sign-in's FAB configuration, at Airflow's default place ([fab] config_file).
COPY --chown=airflow:0 deploy/webserver_config.py /opt/airflow/webserver_config.py
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins

ENV GX_ANALYTICS_ENABLED=false
