"""spec.model: the base model to fine-tune, and its tokenizer's chat template."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from kubesft_api import cel
from kubesft_api.base import HubId, ShortName, SpecModel, one_of
from kubesft_api.chat_templates import (
    BUILTIN_END_OF_TURN,
    end_of_turn_in_template,
    template_syntax_problem,
)
from kubesft_api.refs import SecretKeyRef
from kubesft_api.uris import StorageUri
from kubesft_api.validation import field_error

BUILTIN_CHAT_TEMPLATES = tuple(BUILTIN_END_OF_TURN)
"""Names ``model.chatTemplate`` accepts besides an inline Jinja template."""


class ModelSource(SpecModel):
    """The base model to fine-tune, and how to read its tokenizer and chat template."""

    model_config = cel.validations(*cel.either("name", "uri", required=True))

    name: HubId | None = Field(
        default=None,
        description="Hugging Face Hub model id, e.g. HuggingFaceTB/SmolLM2-135M. Set name or uri.",
    )
    uri: StorageUri | None = Field(
        default=None,
        description=(
            "Model location instead of a hub id: s3://bucket/prefix, pvc://claim/path or an "
            "absolute local path. Set name or uri."
        ),
    )
    revision: ShortName = Field(
        default="main", description="Hub revision (branch, tag or commit) when name is set."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description=(
            "dtype the weights are loaded in. auto: float32 master weights for full fine-tuning "
            "(bf16/fp16 autocast does the rest), the precision's dtype for a LoRA base. bfloat16 or "
            "float16 with full fine-tuning trains purely in that dtype, optimizer state included."
        ),
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model code shipped with the checkpoint to run. Only for sources you trust.",
    )
    chat_template: str | None = Field(
        default=None,
        description=(
            "Chat template to use instead of the model's: a built-in name (chatml, with "
            "generation markers so assistantOnlyLoss works) or an inline Jinja template, whose "
            "end-of-turn token is eosToken or derived from it. Unset keeps the model's own "
            "template; a model without one needs this for conversational data."
        ),
        min_length=1,
        max_length=65536,
    )
    eos_token: str | None = Field(
        default=None,
        description=(
            "The token that ends an assistant turn: the EOS the model learns and generation stops "
            "at. Unset: <|im_end|> for chatml, derived from an inline template that ends every "
            "message with the same token, the tokenizer's EOS for the model's own template."
        ),
        min_length=1,
        max_length=128,
        pattern=r"^\S+$",
    )
    token_secret: SecretKeyRef | None = Field(
        default=None, description="Secret key holding an HF_TOKEN for gated or private hub models."
    )

    @field_validator("chat_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None or value in BUILTIN_CHAT_TEMPLATES:
            return value
        if "{{" in value or "{%" in value:
            problem = template_syntax_problem(value)
            if problem is not None:
                raise ValueError(f"the template does not parse as Jinja: {problem}")
            return value
        raise ValueError(
            f"'{value}' is neither a built-in template ({', '.join(BUILTIN_CHAT_TEMPLATES)}) "
            "nor a Jinja template"
        )

    @model_validator(mode="after")
    def _source(self) -> Self:
        one_of(self, "name", "uri", required=True)
        return self

    @model_validator(mode="after")
    def _end_of_turn(self) -> Self:
        builtin = BUILTIN_END_OF_TURN.get(self.chat_template or "")
        if builtin is not None and self.eos_token not in (None, builtin):
            raise field_error(
                "eosToken",
                f"{self.chat_template} ends turns with {builtin}; eosToken is for inline templates "
                "and the model's own",
            )
        if self.chat_template is not None and builtin is None and self.eos_token is None:
            try:
                end_of_turn_in_template(self.chat_template)
            except ValueError as error:
                raise field_error(
                    "chatTemplate",
                    f"cannot tell which token ends a turn: {error}; set model.eosToken to it "
                    "(e.g. <|im_end|>), so the model learns to stop there",
                ) from None
        return self

    def end_of_turn(self) -> str | None:
        """The token that ends an assistant turn, or None for the tokenizer's own EOS."""
        if self.eos_token is not None or self.chat_template is None:
            return self.eos_token
        builtin = BUILTIN_END_OF_TURN.get(self.chat_template)
        return builtin if builtin is not None else end_of_turn_in_template(self.chat_template)
