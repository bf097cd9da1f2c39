"""Hub models through huggingface_hub: a snapshot of the repository at a revision, read with HF_TOKEN.

The snapshot lands in huggingface_hub's cache under ``HF_HOME`` (the pod's work volume), so
``from_pretrained`` then reads local files only, and a restarted pod on the same volume, or
``HF_HUB_OFFLINE=1`` with a pre-filled cache, needs no network at all.
"""

from __future__ import annotations

import logging
from fnmatch import fnmatch
from pathlib import Path

from kubesft_trainer.errors import ModelError, TrainerError

log = logging.getLogger(__name__)

UNUSED_FILES = (
    "*.onnx",
    "*.onnx_data",
    "*.gguf",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "*.mlmodel",
    "onnx/*",
    "openvino/*",
    "coreml/*",
    "original/*",
)
"""Files of other runtimes (ONNX, GGUF, TensorFlow, Flax, Core ML) and raw consolidated weights:
PyTorch training never reads them, and they can be many gigabytes."""
PICKLED_WEIGHTS = ("pytorch_model*.bin", "*.pt", "*.pth")
WEIGHT_FILES = ("*.safetensors", *PICKLED_WEIGHTS)
TOKENIZER_FILES = ("*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py")
"""What the tokenizer and model config need (and tokenizer code, for trustRemoteCode): no weights."""


def has_weights(files: list[str]) -> bool:
    return any(fnmatch(name.rsplit("/", 1)[-1], pattern) for name in files for pattern in WEIGHT_FILES)


def ignored_files(repo_files: list[str] | None) -> list[str]:
    """Patterns not to download. Pickled weights go too when the repository has safetensors ones,
    which transformers prefers; without a listing (offline) only the other runtimes are skipped."""
    patterns = list(UNUSED_FILES)
    if repo_files is not None and any(fnmatch(name, "*.safetensors") for name in repo_files):
        patterns += PICKLED_WEIGHTS
    return patterns


def _permanent(error: BaseException) -> bool:
    """The repository, revision or access is wrong: a retry cannot help."""
    from huggingface_hub.constants import is_offline_mode
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(
        error, RepositoryNotFoundError | RevisionNotFoundError | GatedRepoError | HFValidationError
    ):
        return True
    # Offline, a snapshot missing from the cache stays missing.
    return isinstance(error, LocalEntryNotFoundError) and is_offline_mode()


def download_model(repo_id: str, revision: str, token: str | None, tokenizer_only: bool = False) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision``, downloaded if it is not cached;
    with ``tokenizer_only``, just the tokenizer and config of a repository that has weights.

    Raises ``ModelError`` (permanent) for a missing repository or revision or a gated one without
    access, and ``TrainerError`` (retryable) for network trouble.
    """
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.constants import is_offline_mode

    where = f"model.name: {repo_id}@{revision}"
    try:
        listing = None
        if not is_offline_mode():
            listing = HfApi(token=token).list_repo_files(repo_id, revision=revision)
        only = list(TOKENIZER_FILES) if tokenizer_only else None
        path = snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            allow_patterns=only,
            ignore_patterns=ignored_files(listing),
        )
    except Exception as error:  # hub errors, OSError and httpx's transport errors (not OSError)
        detail = f"{where}: cannot download it from the Hugging Face Hub: {type(error).__name__}: {error}"
        if _permanent(error):
            hint = "" if token else " (private and gated models need model.tokenSecret)"
            raise ModelError(detail + hint) from error
        raise TrainerError(detail) from error
    if tokenizer_only and listing is not None and not has_weights(listing):
        raise ModelError(f"{where}: the repository has no weights (*.safetensors or *.bin)")
    log.info("model %s@%s is in %s", repo_id, revision, path)
    return Path(path)
