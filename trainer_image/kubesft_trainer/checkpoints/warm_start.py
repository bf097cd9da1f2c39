"""Warm start (``checkpoints.resumeFrom``): the weights of a checkpoint, with a fresh optimizer.

Only the weights travel: the optimizer, scheduler and RNG states of the checkpoint, and its place
in the data, belong to the run that saved it.
"""

from __future__ import annotations

import json
import logging
import shutil
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME, CheckpointManifest, verify_files
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.storage.objects import open_store

log = logging.getLogger(__name__)

FIELD = "checkpoints.resumeFrom"
FULL_WEIGHTS = "model"
ADAPTER_WEIGHTS = "adapter_model"
_WANTED = (
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
)


def download_warm_start(uri: str, settings: CheckpointSettings, target: Path) -> Path:
    """The weight files of the checkpoint folder ``uri`` in ``target``, checked against its
    manifest when it has one (a kubesft checkpoint does; a folder transformers saved may not)."""
    store = open_store(uri, settings)
    keys = [key for key in store.list_keys() if any(fnmatch(key, pattern) for pattern in _WANTED)]
    if not keys:
        raise ConfigError(
            f"{FIELD}: {uri} holds no model.safetensors or adapter_model.safetensors; name a "
            "checkpoint folder, e.g. s3://bucket/job/checkpoints/checkpoint-300"
        )
    shutil.rmtree(target, ignore_errors=True)
    for key in keys:
        store.download_file(key, target / key)
    if not store.exists(MANIFEST_NAME):
        log.info("%s has no %s; its files are used unverified", uri, MANIFEST_NAME)
        return target
    try:
        manifest = CheckpointManifest.parse(store.read_bytes(MANIFEST_NAME), store.location(MANIFEST_NAME))
    except ValueError as error:
        raise ConfigError(f"{FIELD}: {error}") from None
    listed = {item.path for item in manifest.files}
    problems = verify_files(
        target, manifest.model_copy(update={"files": [f for f in manifest.files if f.path in keys]})
    )
    problems += [f"{key} is not in its manifest" for key in keys if key not in listed]
    if problems:
        raise ConfigError(f"{FIELD}: {uri}: {'; '.join(problems[:3])}")
    return target


def _state_dict(folder: Path, name: str) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    single = folder / f"{name}.safetensors"
    if single.is_file():
        return load_file(str(single))
    index = folder / f"{name}.safetensors.index.json"
    if not index.is_file():
        return None
    state: dict[str, Any] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        state.update(load_file(str(folder / shard)))
    return state


def load_warm_start(model: Any, folder: Path, uri: str, lora: bool) -> None:
    """Copy the checkpoint's weights (the adapter's, with LoRA) into ``model``, the one about to train."""
    name = ADAPTER_WEIGHTS if lora else FULL_WEIGHTS
    state = _state_dict(folder, name)
    if state is None:
        other = "a full fine-tuning" if lora else "a LoRA"
        raise ConfigError(
            f"{FIELD}: {uri} has no {name}.safetensors; it looks like {other} checkpoint, and "
            f"lora.enabled is {str(lora).lower()} here"
        )
    try:
        if lora:
            from peft import set_peft_model_state_dict

            loaded = set_peft_model_state_dict(model, state)
            unexpected = list(getattr(loaded, "unexpected_keys", []))
            missing: list[str] = []
        else:
            result = model.load_state_dict(state, strict=False)
            unexpected = list(result.unexpected_keys)
            # Tied output embeddings are saved once, as the input embeddings.
            tied = getattr(model.config, "tie_word_embeddings", False)
            missing = [key for key in result.missing_keys if not (tied and key.endswith("lm_head.weight"))]
    except RuntimeError as error:  # shape mismatches
        raise ConfigError(f"{FIELD}: the weights of {uri} do not fit this model: {error}") from error
    if missing or unexpected:
        shown = ", ".join((missing + unexpected)[:3])
        raise ConfigError(f"{FIELD}: the weights of {uri} do not fit this model (e.g. {shown})")
