"""Loads the base model and its tokenizer, and gives the tokenizer its chat template and pad token."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.model import ModelSource
from kubesft_trainer.errors import ConfigError, ModelError
from kubesft_trainer.model.hub import download_model
from kubesft_trainer.model.templates import template_from_setting
from kubesft_trainer.storage.sources import local_copy

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

PAD_CANDIDATES = ("<|pad|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")
"""Tokens tried, in order, as the pad token when the tokenizer has none (or pads with EOS)."""
NEW_PAD_TOKEN = "<|pad|>"

_PROBE_CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hello?"},
    {"role": "assistant", "content": "Hello."},
]


@dataclass(frozen=True)
class ModelLocation:
    """The local directory ``from_pretrained`` reads, and how the spec named the model."""

    path: str
    field: str
    description: str
    """The hub id (with ``@revision`` unless it is main) or the URI, for logs and the model card."""


@dataclass
class TokenizerSetup:
    """What preparing the tokenizer decided, for SFTConfig and for resizing the model."""

    eos_token: str | None
    """EOS for SFTConfig: the template's end-of-turn token, or None to keep the tokenizer's."""
    added_tokens: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def locate_model(
    source: ModelSource, settings: CheckpointSettings, cache_root: Path, hf_token: str | None
) -> ModelLocation:
    """A local directory holding ``model.name`` (a hub snapshot) or ``model.uri`` (downloaded from S3)."""
    if source.uri is not None:
        try:
            path = local_copy(source.uri, "model.uri", settings, cache_root)
        except FileNotFoundError as error:
            raise ModelError(str(error)) from error
        if not path.is_dir():
            raise ModelError(f"model.uri: {source.uri} is not a directory holding a saved model")
        return ModelLocation(path=str(path), field="model.uri", description=source.uri)
    assert source.name is not None
    snapshot = download_model(source.name, source.revision, hf_token)
    name = source.name if source.revision == "main" else f"{source.name}@{source.revision}"
    return ModelLocation(path=str(snapshot), field="model.name", description=name)


def load_error(source: ModelSource, location: ModelLocation, what: str, error: Exception) -> ModelError:
    # The files are local by now, so what fails to load is the model itself: a retry cannot help.
    if "trust_remote_code" in str(error) and not source.trust_remote_code:
        return ModelError(
            f"{location.field}: the {what} of {location.description} needs its own Python code to "
            "load; set model.trustRemoteCode: true if you trust that code"
        )
    return ModelError(f"{location.field}: cannot load the {what} from {location.description}: {error}")


def load_tokenizer(source: ModelSource, location: ModelLocation) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(location.path, trust_remote_code=source.trust_remote_code)
    except (OSError, ValueError) as error:
        raise load_error(source, location, "tokenizer", error) from error


def _add_tokens(tokenizer: PreTrainedTokenizerBase, tokens: list[str], setup: TokenizerSetup) -> None:
    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
        setup.added_tokens += missing
        setup.notes.append(f"added {', '.join(missing)} to the tokenizer; their embeddings start untrained")


def _check_turn_end(tokenizer: PreTrainedTokenizerBase, source: ModelSource, eos: str | None) -> None:
    """The template must write the EOS the model learns right after an assistant turn, or the
    model learns to stop at a token it never sees; the model's own template only gets a warning."""
    if eos is None or not tokenizer.chat_template:
        return
    try:
        text = str(tokenizer.apply_chat_template(_PROBE_CONVERSATION, tokenize=False))
    except Exception:  # a model's own template may need more than the probe; training tells
        return
    reply = _PROBE_CONVERSATION[-1]["content"]
    if text.partition(reply)[2].lstrip().startswith(eos):
        return
    where = "model.eosToken" if source.eos_token is not None else "model.chatTemplate"
    problem = f"{where}: the chat template does not write {eos} right after an assistant turn"
    if source.chat_template is None and source.eos_token is None:
        log.warning(
            "%s; set model.eosToken to the token that ends a turn, so the model learns to stop", problem
        )
        return
    raise ConfigError(
        f"{problem}, so the model would never learn to stop; set model.eosToken to the token it writes there"
    )


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, source: ModelSource) -> TokenizerSetup:
    """Apply ``model.chatTemplate`` (or keep the model's) and ``model.eosToken``, and make sure pad
    exists and is not EOS."""
    setup = TokenizerSetup(eos_token=source.eos_token)
    if source.chat_template is not None:
        template = template_from_setting(source)
        _add_tokens(tokenizer, list(template.special_tokens), setup)
        tokenizer.chat_template = template.source
        setup.eos_token = template.end_of_turn
        try:
            tokenizer.apply_chat_template(_PROBE_CONVERSATION, tokenize=False)
        except Exception as error:  # jinja2 raises several types for a broken template
            raise ConfigError(
                f"model.chatTemplate: the template does not render a conversation: {error}"
            ) from error
    elif source.eos_token is not None:
        _add_tokens(tokenizer, [source.eos_token], setup)
    _check_turn_end(tokenizer, source, setup.eos_token or tokenizer.eos_token)
    eos = setup.eos_token or tokenizer.eos_token
    pad = tokenizer.pad_token
    if pad is None or pad == eos:
        vocab = tokenizer.get_vocab()
        choice = next((t for t in PAD_CANDIDATES if t in vocab and t != eos), None)
        if choice is None:
            _add_tokens(tokenizer, [NEW_PAD_TOKEN], setup)
            choice = NEW_PAD_TOKEN
        reason = "has no pad token" if pad is None else f"pads with its EOS {pad}"
        setup.notes.append(f"the tokenizer {reason}; padding with {choice} so EOS stays in the loss")
        tokenizer.pad_token = choice
    for note in setup.notes:
        log.warning("%s", note)
    return setup


def load_model(
    source: ModelSource,
    location: ModelLocation,
    tokenizer: PreTrainedTokenizerBase,
    dtype: str,
    quantization_config: Any | None = None,
    attention: str | None = None,
) -> PreTrainedModel:
    """Load the causal LM in ``dtype`` (a torch dtype name, or auto for the checkpoint's own), with
    ``attention`` as its attention implementation, resized when the tokenizer gained tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": "auto" if dtype == "auto" else getattr(torch, dtype),
        "trust_remote_code": source.trust_remote_code,
    }
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if attention is not None:
        kwargs["attn_implementation"] = attention
    try:
        model = AutoModelForCausalLM.from_pretrained(location.path, **kwargs)
    except (OSError, ValueError) as error:
        raise load_error(source, location, "model", error) from error
    embeddings = int(cast("torch.Tensor", model.get_input_embeddings().weight).shape[0])
    if len(tokenizer) > embeddings:
        # A multiple of 64 keeps the matrix shapes efficient on GPUs.
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    return model
