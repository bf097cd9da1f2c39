"""What every SFTJob spec section shares: camelCase on the wire, unknown fields refused, and the
field patterns several sections use.
"""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)
from pydantic.alias_generators import to_camel

from kubesft_api.validation import field_error

HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"


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
        raise field_error(to_camel(second), f"set either {to_camel(first)} or {to_camel(second)}, not both")
    if required and a is None and b is None:
        raise field_error(to_camel(first), f"set one of {to_camel(first)} or {to_camel(second)}")
