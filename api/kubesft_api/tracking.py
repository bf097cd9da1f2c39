"""spec.tracking: experiment tracking. MLflow: the trainer logs the run's parameters, metrics and
loss history to a tracking server, and the run's id and URL go into the status and the model card."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    StringConstraints,
)

from kubesft_api.base import KubeName, SecretKey, ShortName, SpecModel

TrackingUri = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^/\s]+(/\S*)?$")]


class MlflowCredentialsRef(SpecModel):
    """A Secret with the tracking server's credentials, handed to the trainer as MLflow's own
    variables. A key the Secret does not hold is left unset, so a Secret with a token alone works."""

    name: KubeName = Field(description="Name of the Secret in the SFTJob's namespace.")
    username_key: SecretKey = Field(default="MLFLOW_TRACKING_USERNAME", description="Key of the user name.")
    password_key: SecretKey = Field(default="MLFLOW_TRACKING_PASSWORD", description="Key of the password.")
    token_key: SecretKey = Field(default="MLFLOW_TRACKING_TOKEN", description="Key of a bearer token.")


class MlflowTracking(SpecModel):
    """An MLflow tracking server and the experiment the job's run goes into."""

    tracking_uri: TrackingUri = Field(description="The tracking server, e.g. http://mlflow.mlflow:5000.")
    experiment: ShortName = Field(description="Experiment name; created when it does not exist.")
    run_name: ShortName | None = Field(
        default=None,
        description="Name of the run; default the SFTJob's name. A resumed job continues its run.",
    )
    credentials_secret: MlflowCredentialsRef | None = Field(
        default=None, description="Secret with the tracking server's credentials."
    )


class TrackingSettings(SpecModel):
    """Where the run is tracked besides the status: none by default."""

    mlflow: MlflowTracking | None = Field(
        default=None, description="Log the run to an MLflow tracking server."
    )
