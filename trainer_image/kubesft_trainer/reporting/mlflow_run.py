"""The job's MLflow run (``spec.tracking.mlflow``): parameters once, metrics at every logging step.

The run is tagged with the SFTJob's uid, so a job that restarts or resumes continues its run
instead of starting another. Only rank 0 talks to the tracking server. A tracking server that
cannot be reached at the start fails the attempt (retryable); one that fails later costs only
those metrics, with a warning, and training goes on.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubesft_api.tracking import MlflowTracking
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.errors import TrainerError

log = logging.getLogger("kubesft_trainer.mlflow")

TAG_JOB_UID = "kubesft.job_uid"
TAG_JOB = "kubesft.job"
_PARAM_BATCH = 100
"""MLflow takes at most 100 parameters in one batch."""
_PARAM_LENGTH = 6000
"""MLflow's limit on a parameter value's length."""


class TrackingError(TrainerError):
    """The MLflow tracking server refused or could not be reached when the run was opened."""


def flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``{"a": {"b": 1}}`` as ``("a.b", "1")``: MLflow parameters are flat strings."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}.")
        elif value is not None:
            yield name, str(value)[:_PARAM_LENGTH]


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where the tracking server's UI shows the run."""
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


class MlflowRun:
    """The open run of one SFTJob on one tracking server."""

    def __init__(
        self, client: Any, experiment_id: str, run_id: str, tracking_uri: str, resumed: bool
    ) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.url = run_url(tracking_uri, experiment_id, run_id)
        self.resumed = resumed
        self._failing = False

    @classmethod
    def open(cls, settings: MlflowTracking, job_name: str, job_uid: str) -> MlflowRun:
        """The job's run in ``settings.experiment``: the one tagged with ``job_uid``, else a new one."""
        from mlflow import MlflowClient
        from mlflow.entities import RunStatus

        where = f"spec.tracking.mlflow.trackingUri: MLflow at {settings.tracking_uri}"
        try:
            client = MlflowClient(tracking_uri=settings.tracking_uri)
            experiment = client.get_experiment_by_name(settings.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else client.create_experiment(settings.experiment)
            )
            found = client.search_runs(
                [experiment_id], filter_string=f"tags.`{TAG_JOB_UID}` = '{job_uid}'", max_results=1
            )
            if found:
                run_id = found[0].info.run_id
                client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                return cls(client, experiment_id, run_id, settings.tracking_uri, resumed=True)
            tags = {TAG_JOB_UID: job_uid, TAG_JOB: job_name}
            run = client.create_run(experiment_id, tags=tags, run_name=settings.run_name or job_name)
        except Exception as error:
            raise TrackingError(f"{where} cannot be used: {_first_line(error)}") from None
        log.info(
            "tracking the run in MLflow: %s", run_url(settings.tracking_uri, experiment_id, run.info.run_id)
        )
        return cls(client, experiment_id, run.info.run_id, settings.tracking_uri, resumed=False)

    def progress_fields(self) -> dict[str, Any]:
        return {"mlflow_run_id": self.run_id, "mlflow_run_url": self.url}

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in sorted(params.items())]
        for start in range(0, len(items), _PARAM_BATCH):
            self._call(self.client.log_batch, self.run_id, params=items[start : start + _PARAM_BATCH])

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in sorted(values.items())]
        if metrics:
            self._call(self.client.log_batch, self.run_id, metrics=metrics)

    def finish(self, status: str) -> None:
        """``status``: FINISHED, FAILED or KILLED."""
        self._call(self.client.set_terminated, self.run_id, status=status)

    def _call(self, send: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            send(*args, **kwargs)
        except Exception as error:
            if not self._failing:
                log.warning(
                    "MLflow run %s: logging failed, training goes on: %s", self.run_id, _first_line(error)
                )
            self._failing = True
        else:
            self._failing = False


def open_mlflow_run(config: TrainerConfig, env: RuntimeEnv) -> MlflowRun | None:
    """Rank 0's run when the spec asks for MLflow; None otherwise."""
    settings = config.tracking.mlflow
    if settings is None or not env.is_rank_zero:
        return None
    # MLflow retries a request for minutes by default, and a metric must not stall training that
    # long; resources.env can set other values.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # Outside a pod (no SFTJob uid) the run cannot be found again: every start makes a new one.
    return MlflowRun.open(settings, env.job_name or "kubesft", env.job_uid or uuid.uuid4().hex)


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text or type(error).__name__)[:500]


def _numbers(logs: Mapping[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in logs.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


class MlflowCallback(TrainerCallback):
    """On rank 0: the spec and SFTConfig as parameters (a new run only: MLflow keeps them), and
    every logged value (loss, learning rate, eval loss, …) as a metric at its step."""

    def __init__(self, run: MlflowRun, spec: Mapping[str, Any]) -> None:
        self.run = run
        self.spec = spec

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.run.resumed:
            return
        params = dict(flatten(self.spec, "spec."))
        params.update(flatten(args.to_dict(), "sft."))
        self.run.log_params(params)

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.run.log_metrics(_numbers(kwargs.get("logs") or {}), state.global_step)
