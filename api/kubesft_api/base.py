"""What every SFTJob spec section shares: camelCase on the wire, unknown fields refused, and the
field types several sections use. Each field still writes its own description.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from kubesft_api import cel
from kubesft_api.validation import field_error

HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

KubeName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=K8S_NAME)]
"""The name of a Kubernetes object, e.g. a Secret in the SFTJob's namespace."""
KubeString = Annotated[str, StringConstraints(min_length=1, max_length=253)]
"""A name, key or field path passed on to Kubernetes as it is."""
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=SECRET_KEY)]
"""A key inside a Secret."""
HubId = Annotated[str, StringConstraints(max_length=200, pattern=HUB_ID)]
"""A Hugging Face Hub repository id: ``name`` or ``owner/name``."""
ShortName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A split, column, configuration or revision name."""
UriText = Annotated[str, StringConstraints(max_length=2048)]
"""A storage URI before its scheme is checked (``kubesft_api.uris``)."""
HttpUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/]+(/.*)?$")]
"""The URL of a service the trainer talks to: an S3 endpoint, a tracking server."""
StepCount = Annotated[int, Field(ge=1, le=100_000_000)]
"""A number of optimizer steps."""
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A random seed, as numpy accepts it."""


class SpecModel(BaseModel):
    """Base for every spec section: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


def one_of(model: BaseModel, first: str, second: str, required: bool) -> None:
    """Raise when both aliases are set, or (if ``required``) neither."""
    a, b = getattr(model, first), getattr(model, second)
    if a is not None and b is not None:
        raise field_error(to_camel(second), cel.both_message(to_camel(first), to_camel(second)))
    if required and a is None and b is None:
        raise field_error(to_camel(first), cel.neither_message(to_camel(first), to_camel(second)))
