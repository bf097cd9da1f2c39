"""The model's tokenizer and config without its weights: what validation needs to tokenize the data."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.model import ModelSource
from kubesft_trainer.errors import ModelError, ModelUnavailableError, TrainerError
from kubesft_trainer.model.hub import TOKENIZER_FILES, download_model, has_weights
from kubesft_trainer.model.loading import ModelLocation, load_error
from kubesft_trainer.storage.objects import local_target, open_store, parse_storage_uri
from kubesft_trainer.validation.retries import with_retries


def _tokenizer_file(key: str) -> bool:
    return any(fnmatch(key.rsplit("/", 1)[-1], pattern) for pattern in TOKENIZER_FILES)


def _from_store(uri: str, settings: CheckpointSettings, target: Path) -> Path:
    store = open_store(uri, settings)
    keys = store.list_keys()
    if not keys:
        raise ModelError(f"model.uri: nothing found under {uri}")
    if not has_weights(keys):
        raise ModelError(f"model.uri: {uri} holds no weights (*.safetensors or *.bin)")
    for key in filter(_tokenizer_file, keys):
        store.download_file(key, local_target(target, key))
    return target


def _local(uri: str, path: Path) -> Path:
    if not path.is_dir():
        raise ModelError(f"model.uri: {uri} is not a directory holding a saved model")
    if not has_weights([str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]):
        raise ModelError(f"model.uri: {uri} holds no weights (*.safetensors or *.bin)")
    return path


def locate_tokenizer(
    source: ModelSource, settings: CheckpointSettings, cache_root: Path, hf_token: str | None
) -> ModelLocation:
    """A local folder with the model's tokenizer and config, after checking that the model exists
    with weights and can be read with the job's credentials. Network trouble is retried; what stays
    unreachable raises ``ModelUnavailableError``."""
    try:
        if source.name is not None:
            name = source.name if source.revision == "main" else f"{source.name}@{source.revision}"
            folder = with_retries(
                f"reaching {name}",
                lambda: download_model(source.name or "", source.revision, hf_token, tokenizer_only=True),
            )
            return ModelLocation(path=str(folder), field="model.name", description=name)
        assert source.uri is not None
        parsed = parse_storage_uri(source.uri)
        if parsed.local_path is not None:
            folder = _local(source.uri, Path(parsed.local_path))
        else:
            target = cache_root / "tokenizer"
            folder = with_retries(
                f"reading {source.uri}", lambda: _from_store(source.uri or "", settings, target)
            )
        return ModelLocation(path=str(folder), field="model.uri", description=source.uri)
    except (ModelError, TrainerError) as error:
        raise ModelUnavailableError(str(error)) from error


def load_model_config(source: ModelSource, location: ModelLocation) -> dict[str, Any]:
    """The model's config (architecture and sizes), loaded as training loads it
    (``trustRemoteCode`` included), or ``ModelError``."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(location.path, trust_remote_code=source.trust_remote_code)
    except (OSError, ValueError) as error:
        raise load_error(source, location, "model", error) from error
    found: dict[str, Any] = config.to_dict()
    return found
