"""SFTJob as a typed object: metadata, the spec models the operator validates with, and status."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from kubesft.errors import InvalidError
from kubesft_api.sftjob import GROUP, KIND, VERSION, InvalidSpecError, SFTJobSpec, parse_spec
from kubesft_api.status import Condition, SFTJobStatus
from kubesft_api.validation import describe_validation_error

API_VERSION = f"{GROUP}/{VERSION}"
FINISHED_PHASES = ("Succeeded", "Failed")


def validated_spec(raw: Mapping[str, Any] | None) -> SFTJobSpec:
    """``parse_spec``, with its field-path problems raised as the client's ``InvalidError``."""
    try:
        return parse_spec(dict(raw or {}))
    except InvalidSpecError as error:
        raise InvalidError("invalid SFTJob spec: " + "; ".join(error.problems), error.problems) from None


@dataclass
class SFTJob:
    """One SFTJob. ``spec`` is the same pydantic model the operator and webhook validate with.

    Built by hand (``SFTJob(name, spec)`` or ``SFTJob.from_spec(name, {...})``) it is what
    ``Client.create`` sends; read from the cluster it also carries ``status`` and ``raw``, the
    object as the API server returned it (including status fields newer than this client).
    """

    name: str
    spec: SFTJobSpec
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    status: SFTJobStatus | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: Mapping[str, Any],
        *,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> SFTJob:
        """An SFTJob from a spec written as in YAML (camelCase), validated like admission does."""
        return cls(name=name, spec=validated_spec(spec), namespace=namespace, labels=dict(labels or {}))

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> SFTJob:
        """From the Kubernetes object (as ``kubectl get -o json`` or the API server gives it)."""
        if body.get("kind", KIND) != KIND:
            raise InvalidError(f"kind is {body.get('kind')!r}, not {KIND}")
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise InvalidError("metadata.name: required")
        raw_status = body.get("status")
        status = None
        if raw_status:
            try:
                status = SFTJobStatus.model_validate(raw_status)
            except ValidationError as error:
                problems = describe_validation_error(error, root="status")
                raise InvalidError(
                    f"status of SFTJob {name} is not one this client reads ({'; '.join(problems)}): "
                    "upgrade kubesft",
                    problems,
                ) from None
        return cls(
            name=str(name),
            spec=validated_spec(body.get("spec")),
            namespace=metadata.get("namespace"),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            status=status,
            raw=copy.deepcopy(dict(body)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The object to create: apiVersion, kind, metadata and the fields of the spec that were set."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.namespace:
            metadata["namespace"] = self.namespace
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        spec = self.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # --- what the status says, as plain values ------------------------------------------------

    @property
    def phase(self) -> str | None:
        return self.status.phase if self.status else None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def attempt(self) -> int:
        return self.status.attempt if self.status else 0

    def condition(self, kind: str) -> Condition | None:
        """The condition of type ``kind``, if the operator wrote one."""
        for condition in self.status.conditions if self.status else []:
            if condition.type == kind:
                return condition
        return None

    def failure(self) -> str | None:
        """``Reason: message`` of the Failed condition of a failed job."""
        failed = self.condition("Failed")
        if self.phase != "Failed" or failed is None:
            return None
        return f"{failed.reason}: {failed.message}" if failed.reason else failed.message

    def extra_status(self) -> dict[str, Any]:
        """Status fields this client has no model for (from a newer operator), as the server sent them."""
        raw = self.raw.get("status") or {}
        known = {info.alias or name for name, info in SFTJobStatus.model_fields.items()}
        return {key: value for key, value in raw.items() if key not in known}
