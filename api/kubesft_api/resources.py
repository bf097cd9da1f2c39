"""spec.resources: where and on what the trainer pods run."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from kubesft_api.base import SpecModel
from kubesft_api.env import EnvFromSource, EnvVar
from kubesft_api.pod_contract import reserved_env_problem, reserved_prefix_problem
from kubesft_api.validation import field_error

_Quantity = Annotated[
    str, StringConstraints(max_length=32, pattern=r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
]
"""A Kubernetes resource quantity, e.g. 4, 500m or 32Gi."""


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
    gpu_memory: _Quantity | None = Field(
        default=None,
        description=(
            "Memory of one GPU (e.g. 80Gi), a hint for the memory estimate: validation warns when "
            "the estimate exceeds it. Unset: taken from a GPU product or memory label in nodeSelector "
            "where it names one."
        ),
    )
    cpu: _Quantity = Field(default="4", description="CPU request and limit per pod.")
    memory: _Quantity = Field(default="32Gi", description="Memory request and limit per pod.")
    shared_memory: _Quantity = Field(
        default="8Gi", description="Size of /dev/shm (memory-backed) for data loaders and NCCL."
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
        default_factory=list,
        description=(
            "Extra environment variables. KUBESFT_*, TORCHELASTIC_*, RANK, WORLD_SIZE, LOCAL_RANK, "
            "MASTER_ADDR, MASTER_PORT, HF_HOME and HOME are reserved."
        ),
        max_length=256,
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        description=(
            "Secrets or ConfigMaps exposed as variables. A prefix that could form a reserved name "
            "(KUBESFT_*, TORCHELASTIC_*, RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) is refused."
        ),
        max_length=64,
    )

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", key):
                raise ValueError(f"'{key}' is not a valid label key")
        return value

    @model_validator(mode="after")
    def _not_reserved_env(self) -> Self:
        for number, item in enumerate(self.env):
            problem = reserved_env_problem(item.name)
            if problem:
                raise field_error(f"env[{number}].name", problem)
        for number, source in enumerate(self.env_from):
            problem = reserved_prefix_problem(source.prefix or "")
            if problem:
                raise field_error(f"envFrom[{number}].prefix", problem)
        return self
