"""The trainer's MLflow run, against MLflow's own store (sqlite, in process): what it logs, how a
resumed job finds its run again, and the error when the tracking server cannot be reached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from transformers import TrainerControl, TrainerState, TrainingArguments

from kubesft_api.tracking import MlflowTracking
from kubesft_trainer.reporting.mlflow_run import MlflowCallback, MlflowRun, TrackingError, flatten


def settings(uri: str, run_name: str | None = None) -> MlflowTracking:
    # The spec accepts http(s) servers only; MLflow's sqlite store stands in for one here.
    return MlflowTracking.model_construct(
        tracking_uri=uri, experiment="smol", run_name=run_name, credentials_secret=None
    )


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def train(
    callback: MlflowCallback, args: TrainingArguments, losses: list[float], first_step: int = 1
) -> None:
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(args, state, control)
    for step, loss in enumerate(losses, start=first_step):
        state.global_step = step
        callback.on_log(args, state, control, logs={"loss": loss, "learning_rate": 1e-3, "note": "text"})


def test_a_run_gets_the_spec_and_sft_config_as_params_and_each_logged_value_as_a_metric(
    store: str, tmp_path: Path
) -> None:
    run = MlflowRun.open(settings(store, run_name="first"), "smol", "uid-1")
    spec: dict[str, Any] = {"training": {"maxSteps": 3, "learningRate": 0.001}, "lora": {"enabled": False}}
    args = TrainingArguments(output_dir=str(tmp_path / "out"), learning_rate=1e-3, report_to="none")
    train(MlflowCallback(run, spec), args, [2.5, 2.0, 1.5])
    run.finish("FINISHED")

    client = MlflowClient(tracking_uri=store)
    found = client.get_run(run.run_id)
    assert (found.info.status, found.info.run_name) == ("FINISHED", "first")
    assert found.data.tags["kubesft.job_uid"] == "uid-1"
    assert found.data.params["spec.training.maxSteps"] == "3"
    assert found.data.params["spec.lora.enabled"] == "False"
    assert float(found.data.params["sft.learning_rate"]) == 1e-3
    history = client.get_metric_history(run.run_id, "loss")
    assert [(point.step, point.value) for point in history] == [(1, 2.5), (2, 2.0), (3, 1.5)]
    assert "note" not in found.data.metrics
    assert run.url == f"{store}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
    assert run.progress_fields() == {"mlflow_run_id": run.run_id, "mlflow_run_url": run.url}


def test_a_resumed_job_continues_its_run_without_logging_its_params_again(store: str, tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    first = MlflowRun.open(settings(store), "smol", "uid-1")
    train(MlflowCallback(first, {"a": 1}), args, [3.0, 2.0])
    again = MlflowRun.open(settings(store), "smol", "uid-1")
    assert (again.run_id, again.resumed) == (first.run_id, True)
    # A changed parameter would be refused by MLflow: the resumed run logs none.
    train(MlflowCallback(again, {"a": 2}), args, [1.0], first_step=3)
    other = MlflowRun.open(settings(store), "other", "uid-2")
    assert other.run_id != first.run_id

    client = MlflowClient(tracking_uri=store)
    found = client.get_run(first.run_id)
    assert found.info.status == "RUNNING" and found.info.run_name == "smol"
    assert found.data.params["spec.a"] == "1"
    assert [point.step for point in client.get_metric_history(first.run_id, "loss")] == [1, 2, 3]


def test_an_unreachable_tracking_server_fails_the_start_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(TrackingError) as failed:
        MlflowRun.open(settings("http://127.0.0.1:9"), "smol", "uid-1")
    assert str(failed.value).startswith(
        "spec.tracking.mlflow.trackingUri: MLflow at http://127.0.0.1:9 cannot be used: "
    )


def test_flatten_makes_dotted_string_params() -> None:
    assert dict(flatten({"a": {"b": 1, "c": None}, "d": [1, 2]}, "spec.")) == {
        "spec.a.b": "1",
        "spec.d": "[1, 2]",
    }
