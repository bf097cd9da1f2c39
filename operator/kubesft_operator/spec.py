"""The SFTJob API: the trainer's config sections plus the pod-level ones, and the status.

``crds/sftjob.yaml`` is generated from these models (``make crds``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kubesft_trainer.config import SecretKeyRef, SpecModel, TrainerConfig
from kubesft_trainer.progress_report import ProgressReport
from kubesft_trainer.validation import field_error

GROUP = "kubesft.io"
VERSION = "v1alpha1"
KIND = "SFTJob"
PLURAL = "sftjobs"
SINGULAR = "sftjob"
SHORT_NAMES = ["sft"]

_QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_SECRET_LIKE = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY)", re.I)
_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
_OPERATOR_ENV = re.compile(r"^(KUBESFT_.*|MASTER_ADDR|MASTER_PORT|HF_HOME|HOME)$")
"""Variables the operator sets on every trainer pod; env may not override them."""


class ConfigMapKeyRef(SpecModel):
    """A key inside a ConfigMap."""

    name: str = Field(description="ConfigMap name.", min_length=1, max_length=253)
    key: str = Field(description="Key inside the ConfigMap.", min_length=1, max_length=253)


class FieldRef(SpecModel):
    """A field of the pod, e.g. metadata.name."""

    field_path: str = Field(description="Path of the pod field.", min_length=1, max_length=253)


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from. Exactly one is set."""

    secret_key_ref: SecretKeyRef | None = Field(default=None, description="A Secret key.")
    config_map_key_ref: ConfigMapKeyRef | None = Field(default=None, description="A ConfigMap key.")
    field_ref: FieldRef | None = Field(default=None, description="A pod field.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [n for n in ("secret_key_ref", "config_map_key_ref", "field_ref") if getattr(self, n)]
        if len(chosen) != 1:
            raise ValueError("set exactly one of secretKeyRef, configMapKeyRef or fieldRef")
        return self


class EnvVar(SpecModel):
    """An environment variable for the trainer. Secrets only by reference."""

    name: str = Field(description="Variable name.", min_length=1, max_length=253, pattern=_ENV_NAME)
    value: str | None = Field(
        default=None,
        description="Literal value, for non-secret settings only.",
        max_length=65536,
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="Value taken from a Secret, ConfigMap or pod field."
    )

    @model_validator(mode="after")
    def _reference_secrets(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise field_error("value", "set value or valueFrom, not both")
        if self.value is not None and _SECRET_LIKE.search(self.name):
            raise field_error(
                "value",
                f"{self.name} looks like a secret; do not write it inline, use valueFrom.secretKeyRef",
            )
        return self


class LocalObjectRef(SpecModel):
    """A Secret or ConfigMap by name."""

    name: str = Field(description="Object name.", min_length=1, max_length=253)


class EnvFromSource(SpecModel):
    """All keys of a Secret or ConfigMap as environment variables."""

    prefix: str | None = Field(default=None, description="Prefix added to every key.", max_length=253)
    secret_ref: LocalObjectRef | None = Field(default=None, description="A Secret.")
    config_map_ref: LocalObjectRef | None = Field(default=None, description="A ConfigMap.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError("set exactly one of secretRef or configMapRef")
        return self


class Resources(SpecModel):
    """Where and on what the trainer pods run."""

    nodes: int = Field(
        default=1,
        description="Pods (machines) to train on; more than 1 runs torchrun across them.",
        ge=1,
        le=256,
    )
    gpus_per_node: int = Field(default=1, description="GPUs per pod; 0 trains on CPU.", ge=0, le=64)
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        description="Extended resource name of the GPU.",
        min_length=1,
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
    )
    cpu: str = Field(
        default="4", description="CPU request and limit per pod.", max_length=32, pattern=_QUANTITY
    )
    memory: str = Field(
        default="32Gi", description="Memory request and limit per pod.", max_length=32, pattern=_QUANTITY
    )
    shared_memory: str = Field(
        default="8Gi",
        description="Size of /dev/shm (memory-backed) for data loaders and NCCL.",
        max_length=32,
        pattern=_QUANTITY,
    )
    image: str | None = Field(
        default=None,
        description="Trainer image; unset uses the operator's configured trainer image.",
        min_length=1,
        max_length=1024,
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="When the kubelet pulls the image."
    )
    node_selector: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict, description="Node labels the pods must match.", max_length=64
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Pod tolerations, as in a PodSpec.",
        max_length=64,
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Pod affinity, as in a PodSpec.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: str | None = Field(
        default=None, description="PriorityClass of the pods.", max_length=253
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Extra environment variables.", max_length=256
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list, description="Secrets or ConfigMaps exposed as variables.", max_length=64
    )

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", key):
                raise ValueError(f"'{key}' is not a valid label key")
        return value

    @model_validator(mode="after")
    def _not_operator_env(self) -> Self:
        for number, item in enumerate(self.env):
            if _OPERATOR_ENV.match(item.name):
                raise field_error(
                    f"env[{number}].name", f"{item.name} is set by kubesft and cannot be overridden"
                )
        return self


class RunPolicy(SpecModel):
    """How the job runs, retries, pauses and is cleaned up."""

    suspend: bool = Field(default=False, description="Stop the pods after a final checkpoint; false resumes.")
    backoff_limit: int = Field(
        default=3, description="Retries after retryable failures or preemption.", ge=0, le=100
    )
    active_deadline_seconds: int | None = Field(
        default=None, description="Fail the job when it has run this long.", ge=1, le=31_536_000
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        description="Delete the SFTJob this long after it succeeds or fails.",
        ge=0,
        le=31_536_000,
    )
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue; the Job is created suspended for Kueue to admit.",
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    termination_grace_period_seconds: int = Field(
        default=300,
        description=(
            "Time the trainer gets after SIGTERM (preemption, suspend, delete) to save and "
            "upload a last checkpoint. Cover one step plus one save and upload."
        ),
        ge=30,
        le=86_400,
    )


class SFTJobSpec(TrainerConfig):
    """spec of an SFTJob: the trainer's sections plus resources and run policy."""

    resources: Resources = Field(default_factory=Resources, description="Pods, GPUs and scheduling.")
    run_policy: RunPolicy = Field(
        default_factory=RunPolicy, description="Retries, suspend, deadline and TTL."
    )

    def trainer_config(self) -> TrainerConfig:
        """The part of the spec the trainer reads."""
        return TrainerConfig.model_validate(self.model_dump(include=set(TrainerConfig.model_fields)))


Phase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"]
ConditionType = Literal["Created", "Running", "Suspended", "Succeeded", "Failed"]


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """One aspect of the job's state, as Kubernetes conditions are written."""

    type: ConditionType = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason, e.g. Preempted.", max_length=128)
    message: str = Field(default="", description="What happened and what to do about it.", max_length=32768)
    last_transition_time: str | None = Field(default=None, description="When status last changed.")


class SFTJobStatus(StatusModel):
    """status of an SFTJob, written by the operator only."""

    phase: Phase | None = Field(default=None, description="Pending, Running, Suspended, Succeeded or Failed.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Created, Running, Suspended, Succeeded, Failed.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: str | None = Field(default=None, description="When training first started.")
    completion_time: str | None = Field(default=None, description="When the job succeeded or failed.")
    restarts: int = Field(
        default=0, description="Attempts started after a retryable failure or preemption.", ge=0
    )
    attempt: int = Field(default=0, description="Index of the current trainer Job.", ge=0)
    job_name: str | None = Field(default=None, description="Name of the current trainer Job.")
    progress: ProgressReport | None = Field(default=None, description="Training progress read from rank 0.")
    progress_text: str | None = Field(
        default=None, description="Progress as step/total (percent), for kubectl get."
    )
    eta_text: str | None = Field(default=None, description="Time left, e.g. 12m, for kubectl get -o wide.")
    latest_checkpoint: str | None = Field(default=None, description="URI of the newest complete checkpoint.")
    output_uri: str | None = Field(default=None, description="Where the trained model was written.")
    observed_generation: int | None = Field(
        default=None, description="Generation of the spec this status reflects."
    )


class InvalidSpecError(ValueError):
    """An SFTJob spec that cannot run; ``problems`` name the fields at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_spec(raw: dict[str, Any] | None) -> SFTJobSpec:
    """Validate an SFTJob's spec as the API server stores it, or raise ``InvalidSpecError``."""
    from kubesft_trainer.validation import describe_validation_error

    try:
        return SFTJobSpec.model_validate(raw or {})
    except ValidationError as exc:
        raise InvalidSpecError(describe_validation_error(exc, root="spec")) from exc
