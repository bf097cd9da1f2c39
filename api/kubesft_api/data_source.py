"""Where rows come from and what shape they have: the fields every data source shares (the
training data, each entry of a mixture, each evaluation set)."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from kubesft_api import cel
from kubesft_api.base import HubId, ShortName, SpecModel, one_of
from kubesft_api.uris import StorageUri
from kubesft_api.validation import field_error

SourceFormat = Literal["auto", "messages", "sharegpt", "prompt-completion", "text"]
ChatRole = Literal["system", "user", "assistant", "tool"]
SHAREGPT_ROLES: dict[str, ChatRole] = {"human": "user", "gpt": "assistant", "system": "system"}
"""ShareGPT's speaker names and the chat roles they become, unless dataset.roles says otherwise."""
DEFAULT_MESSAGES_FIELD = "messages"
DEFAULT_SHAREGPT_FIELD = "conversations"

_Speaker = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def source_rules(*, unless: str | None = None) -> list[cel.Rule]:
    """``check_source(required=True)`` as CEL; ``unless``: when the rules do not apply."""
    skip = f"{unless} || " if unless else ""
    conditional = [
        cel.needs(
            cel.present("subset"),
            cel.present("name"),
            "applies to hub datasets only; it needs name",
            "subset",
        ),
        cel.needs(
            cel.differs("revision", "main"),
            cel.present("name"),
            "applies to hub datasets only; it needs name",
            "revision",
        ),
        cel.needs(
            cel.present("roles"),
            "!has(self.format) || self.format in ['auto', 'sharegpt']",
            "maps ShareGPT speakers; format must be auto or sharegpt",
            "roles",
        ),
        cel.needs(
            cel.is_true("asChat"),
            "!has(self.format) || self.format in ['auto', 'prompt-completion']",
            "turns prompt-completion rows into chats; format must be auto or prompt-completion",
            "asChat",
        ),
    ]
    guarded = [{**r, "rule": f"{skip}{r['rule']}"} for r in conditional]
    return [*cel.either("name", "uri", required=True, unless=unless), *guarded]


class SourceFields(SpecModel):
    """One source of rows: the hub dataset or files, the split, the format and its column names."""

    name: HubId | None = Field(
        default=None, description="Hugging Face Hub dataset id, e.g. HuggingFaceTB/smoltalk. Set name or uri."
    )
    subset: ShortName | None = Field(
        default=None, description="Hub dataset configuration name, e.g. everyday-conversations."
    )
    uri: StorageUri | None = Field(
        default=None,
        description=(
            "Data files instead of a hub id: s3://bucket/key-or-prefix, pvc://claim/path or an "
            "absolute local path to a .jsonl, .json, .parquet or .csv file or a folder of them."
        ),
    )
    revision: ShortName = Field(
        default="main",
        description=(
            "Hub dataset revision (branch, tag or commit) when name is set; recorded in "
            "training_summary.json and the model card."
        ),
    )
    split: ShortName = Field(default="train", description="Split used for training.")
    format: SourceFormat = Field(
        default="auto",
        description=(
            "Row format. auto detects it from the columns: messages (a list of role/content "
            "turns), sharegpt (a list of from/value turns), prompt-completion (strings or message "
            "lists), or text."
        ),
    )
    messages_field: ShortName | None = Field(
        default=None,
        description=(
            "Column holding the conversation: default messages, or conversations in sharegpt format."
        ),
    )
    roles: dict[_Speaker, ChatRole] | None = Field(
        default=None,
        description=(
            "ShareGPT speaker (the from of a turn) to chat role, e.g. {bot: assistant}; replaces the "
            "default mapping human: user, gpt: assistant, system: system."
        ),
        max_length=32,
    )
    prompt_field: ShortName = Field(
        default="prompt", description="Column holding the prompt in prompt-completion format."
    )
    completion_field: ShortName = Field(
        default="completion", description="Column holding the completion in prompt-completion format."
    )
    as_chat: bool = Field(
        default=False,
        description=(
            "Make each prompt-completion row a conversation: the prompt a user turn, the completion "
            "an assistant turn, so the chat template applies (with assistantOnlyLoss, loss on the answer only)."
        ),
    )
    text_field: ShortName = Field(default="text", description="Column holding the document in text format.")

    @property
    def conversation_field(self) -> str:
        """The conversation column this source reads, its default depending on the format."""
        if self.messages_field is not None:
            return self.messages_field
        return DEFAULT_SHAREGPT_FIELD if self.format == "sharegpt" else DEFAULT_MESSAGES_FIELD

    @property
    def speaker_roles(self) -> dict[str, str]:
        return dict(self.roles if self.roles is not None else SHAREGPT_ROLES)

    @property
    def label(self) -> str:
        """How messages and reports name the source: its hub id or URI, and subset."""
        label = self.name or self.uri or ""
        return label + (f" ({self.subset})" if self.subset else "")

    def check_source(self, required: bool) -> None:
        """The rules the source fields obey wherever they appear."""
        one_of(self, "name", "uri", required=required)
        if self.subset is not None and self.name is None:
            raise field_error("subset", "applies to hub datasets only; it needs name")
        if self.revision != "main" and self.name is None:
            raise field_error("revision", "applies to hub datasets only; it needs name")
        if self.roles is not None and self.format not in ("auto", "sharegpt"):
            raise field_error("roles", f"maps ShareGPT speakers; format is {self.format}")
        if self.as_chat and self.format not in ("auto", "prompt-completion"):
            raise field_error("asChat", f"turns prompt-completion rows into chats; format is {self.format}")


class MixtureSource(SourceFields):
    """One source of a dataset mixture, and how much of it to take."""

    model_config = cel.validations(*source_rules(), *cel.either("weight", "maxSamples", required=False))

    weight: float | None = Field(
        default=None,
        description=(
            "How many times each row is taken: 0.5 takes a seeded random half of the rows, 2 every "
            "row twice. Set weight or maxSamples; neither takes every row once."
        ),
        gt=0.0,
        le=100.0,
    )
    max_samples: int | None = Field(
        default=None,
        description="Take at most this many rows of this source (a seeded random subset).",
        ge=1,
        le=1_000_000_000,
    )

    @model_validator(mode="after")
    def _source(self) -> Self:
        self.check_source(required=True)
        one_of(self, "weight", "max_samples", required=False)
        return self


SetName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")
]
HELDOUT = "heldout"
"""The evaluation set held out of the training data (evalSplit or evalFraction)."""


class EvalSet(SourceFields):
    """A named evaluation source, evaluated beside the held-out rows to measure what training keeps."""

    model_config = cel.validations(
        *source_rules(),
        cel.rule(
            "self.setName != 'heldout'",
            "heldout names the held-out training rows; pick another name",
            "setName",
        ),
    )

    set_name: SetName = Field(
        description=(
            "The set's name in metrics (label set), status and the model card, e.g. general; "
            "heldout names the held-out training rows."
        )
    )
    max_samples: int = Field(
        default=500,
        description="Evaluate on at most this many rows of the split (a seeded random subset); 0 means all.",
        ge=0,
        le=1_000_000,
    )

    @model_validator(mode="after")
    def _source(self) -> Self:
        self.check_source(required=True)
        if self.set_name == HELDOUT:
            raise field_error("setName", f"{HELDOUT} names the held-out training rows; pick another name")
        return self
