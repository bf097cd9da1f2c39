"""The SFTJob resource: its API group and names, and the spec that composes every section.

``crds/sftjob.yaml`` is generated from these models (``make crds``).
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    ValidationError,
)

from kubesft_api.pod_contract import GROUP as GROUP
from kubesft_api.resources import Resources
from kubesft_api.run_policy import RunPolicy
from kubesft_api.trainer_config import TrainerConfig
from kubesft_api.validation import describe_validation_error

VERSION = "v1alpha1"
KIND = "SFTJob"
PLURAL = "sftjobs"
SINGULAR = "sftjob"
SHORT_NAMES = ["sft"]


class SFTJobSpec(TrainerConfig):
    """spec of an SFTJob: the trainer's sections plus resources and run policy."""

    resources: Resources = Field(default_factory=Resources, description="Pods, GPUs and scheduling.")
    run_policy: RunPolicy = Field(
        default_factory=RunPolicy, description="Retries, suspend, deadline and TTL."
    )

    def trainer_config(self) -> TrainerConfig:
        """The part of the spec the trainer reads."""
        return TrainerConfig.model_validate(self.model_dump(include=set(TrainerConfig.model_fields)))


class InvalidSpecError(ValueError):
    """An SFTJob spec that cannot run; ``problems`` name the fields at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_spec(raw: dict[str, Any] | None) -> SFTJobSpec:
    """Validate an SFTJob's spec as the API server stores it, or raise ``InvalidSpecError``."""
    try:
        return SFTJobSpec.model_validate(raw or {})
    except ValidationError as exc:
        raise InvalidSpecError(describe_validation_error(exc, root="spec")) from exc
