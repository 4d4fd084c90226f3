"""Issue 15 §1–§2: run conf cannot redirect storage or endpoints; bad data fails at once, outages are retried."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from etl import orchestration
from etl.errors import AccountingError, BadInput, ConfigError, SourceRefused, SourceUnavailable, ValidationFailed


@pytest.mark.parametrize(
    "key", ["warehouse_uri", "landing_uri", "scb_base_url", "kolada_base_url", "kolada_kpis", "surprise"]
)
def test_a_run_conf_key_that_is_no_param_is_refused_with_one_line(key, tmp_path):
    with pytest.raises(ConfigError) as error:
        orchestration.settings_from_airflow({key: str(tmp_path / "elsewhere"), "period": "2019-03"}, {"period"})
    message = str(error.value)
    assert f"run conf key(s) not accepted: '{key}'" in message and "\n" not in message
    assert "Params: period" in message
    assert not (tmp_path / "elsewhere").exists()


def test_the_params_a_dag_declares_are_accepted(monkeypatch, tmp_path):
    monkeypatch.setenv("ETL_WAREHOUSE_URI", str(tmp_path / "wh"))
    settings = orchestration.settings_from_airflow({"period": "2019-03"}, {"period"})
    assert settings.warehouse_uri == str(tmp_path / "wh")


@pytest.mark.parametrize(
    "error",
    [
        BadInput("x.csv: refused"),
        ValidationFailed("2019-03: blocked"),
        AccountingError("rows lost"),
        ConfigError("bad setting"),
        SourceRefused("SCB: GET /tables/x answered HTTP 404 Not Found (not retried)"),
    ],
)
def test_bad_data_fails_the_task_without_retries_carrying_its_line(error):
    def run():
        raise error

    with pytest.raises(AirflowFailException) as failed:
        orchestration.fail_fast(run)
    assert str(failed.value) == str(error)
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_what_can_heal_is_raised_for_the_retries():
    def run():
        raise SourceUnavailable("SCB: HTTP 503 after 5 attempts")

    with pytest.raises(SourceUnavailable):
        orchestration.fail_fast(run)
    assert orchestration.fail_fast(lambda: 42) == 42


def test_a_task_whose_warehouse_is_not_the_one_its_assets_name_says_so(monkeypatch, tmp_path):
    """Issue 24 C: the Assets are named at parse time from the environment; a Variable in the metadata database
    naming another warehouse would make their events name tables the run does not write: a warning says so."""
    from airflow.sdk import Variable

    monkeypatch.delenv("AIRFLOW_VAR_ETL_WAREHOUSE_URI", raising=False)
    monkeypatch.setenv("ETL_WAREHOUSE_URI", str(tmp_path / "wh"))
    variables = {"etl_warehouse_uri": "s3://etl/warehouse"}
    monkeypatch.setattr(Variable, "get", staticmethod(lambda name, default=None: variables.get(name, default)))
    said: list[str] = []
    monkeypatch.setattr(orchestration.log, "warning", lambda message, *args: said.append(message % args))
    assert orchestration.settings_from_airflow({}).warehouse_uri == "s3://etl/warehouse"
    assert said == [
        f"this run's warehouse is s3://etl/warehouse (Variable etl_warehouse_uri) but the DAGs' Assets "
        f"name {(tmp_path / 'wh').as_uri()} (ETL_WAREHOUSE_URI as the DAG processor reads it): set "
        "ETL_WAREHOUSE_URI to the same warehouse"
    ]

    said.clear()
    variables["etl_warehouse_uri"] = str(tmp_path / "wh")  # the same warehouse: nothing to say
    orchestration.settings_from_airflow({})
    assert said == []
