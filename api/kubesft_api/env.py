"""spec.resources.env and envFrom: variables for the trainer, secrets only by reference."""

from __future__ import annotations

import re
from typing import Self

from pydantic import (
    Field,
    model_validator,
)

from kubesft_api import cel
from kubesft_api.base import KubeString, SpecModel
from kubesft_api.refs import SecretKeyRef
from kubesft_api.validation import field_error

_SECRET_NAME = r"((^|_)KEY$|(^|_)KEY_|PASS|TOKEN|SECRET|CREDENTIAL)"
"""Names whose values are secrets: *_KEY (and *_KEY_*), *PASS*, *TOKEN*, *SECRET*, *CREDENTIAL*."""
_SECRET_LIKE = re.compile(_SECRET_NAME, re.I)
NOT_SECRET_NAMES = ("TOKENIZERS_PARALLELISM",)
"""Well-known settings whose names only look like secrets."""
_ONE_SOURCE = "set exactly one of secretKeyRef, configMapKeyRef or fieldRef"
_ONE_REF = "set exactly one of secretRef or configMapRef"
_VALUE_OR_FROM = "set value or valueFrom, not both"
_INLINE_SECRET_RULE: cel.Rule = {
    "rule": "!has(self.value) || self.name in "
    + "["
    + ", ".join(f"'{name}'" for name in NOT_SECRET_NAMES)
    + f"] || !self.name.matches('(?i){_SECRET_NAME}')",
    "message": "the name looks like a secret (*_KEY, *PASS*, *TOKEN*, *SECRET*, *CREDENTIAL*): "
    "take its value from valueFrom.secretKeyRef, not value",
    "fieldPath": ".value",
}


def looks_like_secret(name: str) -> bool:
    """Whether a variable called ``name`` likely holds a secret, so its value must not be inline."""
    return name not in NOT_SECRET_NAMES and _SECRET_LIKE.search(name) is not None


_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


class ConfigMapKeyRef(SpecModel):
    """A key inside a ConfigMap."""

    name: KubeString = Field(description="ConfigMap name.")
    key: KubeString = Field(description="Key inside the ConfigMap.")


class FieldRef(SpecModel):
    """A field of the pod, e.g. metadata.name."""

    field_path: KubeString = Field(description="Path of the pod field.")


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from. Exactly one is set."""

    model_config = cel.validations(
        cel.exactly_one(_ONE_SOURCE, "secretKeyRef", "configMapKeyRef", "fieldRef")
    )

    secret_key_ref: SecretKeyRef | None = Field(default=None, description="A Secret key.")
    config_map_key_ref: ConfigMapKeyRef | None = Field(default=None, description="A ConfigMap key.")
    field_ref: FieldRef | None = Field(default=None, description="A pod field.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [n for n in ("secret_key_ref", "config_map_key_ref", "field_ref") if getattr(self, n)]
        if len(chosen) != 1:
            raise ValueError(_ONE_SOURCE)
        return self


class EnvVar(SpecModel):
    """An environment variable for the trainer. Secrets only by reference."""

    model_config = cel.validations(
        _INLINE_SECRET_RULE,
        cel.rule(f"!({cel.present('value')} && {cel.present('valueFrom')})", _VALUE_OR_FROM, "value"),
    )

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
            raise field_error("value", _VALUE_OR_FROM)
        if self.value is not None and looks_like_secret(self.name):
            raise field_error(
                "value",
                f"{self.name} looks like a secret (*_KEY, *PASS*, *TOKEN*, *SECRET*, *CREDENTIAL*); "
                "do not write it inline, use valueFrom.secretKeyRef",
            )
        return self


class LocalObjectRef(SpecModel):
    """A Secret or ConfigMap by name."""

    name: KubeString = Field(description="Object name.")


class EnvFromSource(SpecModel):
    """All keys of a Secret or ConfigMap as environment variables."""

    model_config = cel.validations(cel.exactly_one(_ONE_REF, "secretRef", "configMapRef"))

    prefix: str | None = Field(default=None, description="Prefix added to every key.", max_length=253)
    secret_ref: LocalObjectRef | None = Field(default=None, description="A Secret.")
    config_map_ref: LocalObjectRef | None = Field(default=None, description="A ConfigMap.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError(_ONE_REF)
        return self
