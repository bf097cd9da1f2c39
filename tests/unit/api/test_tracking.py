"""spec.tracking.mlflow: what it takes, and each bad value named by its field."""

from __future__ import annotations

import pytest

from kubesft_api.sftjob import InvalidSpecError, parse_spec
from tests.support.specs import with_changes

SERVER = {"trackingUri": "https://mlflow.example.com/", "experiment": "smol-sft"}


def test_tracking_is_off_by_default_and_mlflow_takes_a_server_experiment_and_secret() -> None:
    assert parse_spec(with_changes()).tracking.mlflow is None
    mlflow = parse_spec(
        with_changes(tracking__mlflow={**SERVER, "runName": "first", "credentialsSecret": {"name": "mlflow"}})
    ).tracking.mlflow
    assert mlflow is not None
    assert (mlflow.tracking_uri, mlflow.experiment, mlflow.run_name) == (
        "https://mlflow.example.com/",
        "smol-sft",
        "first",
    )
    assert mlflow.credentials_secret is not None
    assert (
        mlflow.credentials_secret.username_key,
        mlflow.credentials_secret.password_key,
        mlflow.credentials_secret.token_key,
    ) == ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@pytest.mark.parametrize(
    ("mlflow", "expected"),
    [
        ({**SERVER, "trackingUri": "mlflow:5000"}, "spec.tracking.mlflow.trackingUri: "),
        ({**SERVER, "trackingUri": "file:///tmp/mlruns"}, "spec.tracking.mlflow.trackingUri: "),
        ({"trackingUri": SERVER["trackingUri"]}, "spec.tracking.mlflow.experiment: "),
        ({**SERVER, "experiment": ""}, "spec.tracking.mlflow.experiment: "),
        (
            {**SERVER, "credentialsSecret": {"name": "Bad_Name"}},
            "spec.tracking.mlflow.credentialsSecret.name: ",
        ),
        ({**SERVER, "runId": "abc"}, "spec.tracking.mlflow.runId: "),
    ],
)
def test_bad_tracking_settings_name_their_field(mlflow: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        parse_spec(with_changes(tracking__mlflow=mlflow))
    assert any(problem.startswith(expected) for problem in refused.value.problems), refused.value.problems
