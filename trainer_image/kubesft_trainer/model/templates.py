"""Chat templates: the built-in ones, and which end-of-turn token each needs as EOS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubesft_api.chat_templates import BUILTIN_END_OF_TURN
from kubesft_api.model import BUILTIN_CHAT_TEMPLATES, ModelSource
from kubesft_trainer.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template and the tokens it relies on."""

    source: str
    end_of_turn: str | None = None
    """The token that ends an assistant turn. It must be the EOS the model learns, or the
    model never learns to stop (and it must differ from the pad token)."""
    special_tokens: tuple[str, ...] = ()
    """Tokens the template writes that must be single tokens in the vocabulary."""


TEMPLATE_DIR = Path(__file__).with_name("templates")
_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
CHATML_START = "<|im_start|>"
CHATML_END = BUILTIN_END_OF_TURN["chatml"]


def builtin_template(name: str) -> ChatTemplate:
    """A built-in template by name. Each carries ``{% generation %}`` markers for assistantOnlyLoss."""
    if name not in BUILTIN_CHAT_TEMPLATES:
        raise KeyError(f"no built-in chat template '{name}'; built-in: {', '.join(BUILTIN_CHAT_TEMPLATES)}")
    source = (TEMPLATE_DIR / f"{name}.jinja").read_text()
    return ChatTemplate(source=source, end_of_turn=CHATML_END, special_tokens=(CHATML_START, CHATML_END))


def template_from_setting(source: ModelSource) -> ChatTemplate:
    """``model.chatTemplate`` (set): a built-in name, or an inline Jinja template used as it is,
    ending turns with ``model.eosToken`` or the token derived from it."""
    assert source.chat_template is not None
    if source.chat_template in BUILTIN_CHAT_TEMPLATES:
        return builtin_template(source.chat_template)
    end = source.end_of_turn()
    return ChatTemplate(source=source.chat_template, end_of_turn=end, special_tokens=(end,) if end else ())


def check_template_fits_data(
    tokenizer: PreTrainedTokenizerBase, conversational: bool, assistant_only: bool
) -> None:
    """Conversations need a chat template, and assistantOnlyLoss needs one TRL can mask with."""
    if not conversational:
        return
    if not tokenizer.chat_template:
        raise ConfigError(
            "model.chatTemplate: the model has no chat template and the data is conversational; "
            "set model.chatTemplate: chatml (or an inline Jinja template)"
        )
    if not assistant_only:
        return
    # Checked before importing TRL, which takes seconds: validation on a CPU need not pay for it.
    if _GENERATION_MARKER.search(str(tokenizer.chat_template)):
        return
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return
    try:
        get_training_chat_template(tokenizer)
    except ValueError as error:
        raise ConfigError(
            "training.assistantOnlyLoss: the model's chat template has no {% generation %} markers and TRL has "
            "no training version of it; set model.chatTemplate: chatml, or a template that wraps assistant "
            f"turns in {{% generation %}}…{{% endgeneration %}} ({error})"
        ) from error
