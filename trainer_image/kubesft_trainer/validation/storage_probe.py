"""Write access to the checkpoint and output URIs, proved by writing and deleting a probe object."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.errors import StorageUnavailableError, TrainerError
from kubesft_trainer.storage.objects import open_store, parse_storage_uri
from kubesft_trainer.validation.retries import with_retries

PROBE_PREFIX = ".kubesft-validation-probe-"


def _missing_folders(uri: str) -> list[Path]:
    """The folders of a local ``uri`` that do not exist yet, deepest first: a probe that made
    them removes them again, so validation leaves nothing behind."""
    local = parse_storage_uri(uri).local_path
    if local is None:
        return []
    missing = []
    folder = Path(local)
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def probe(uri: str, field: str, config: TrainerConfig) -> None:
    """Write a probe object under ``uri`` and delete it, or raise ``StorageUnavailableError``."""
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    made = _missing_folders(uri)

    def write_and_delete() -> None:
        store = open_store(uri, config.checkpoints)
        store.write_bytes(key, b"kubesft validation probe\n")
        store.delete_key(key)

    try:
        with_retries(f"writing a probe object to {uri}", write_and_delete)
    except TrainerError as error:
        raise StorageUnavailableError(
            f"{field}: cannot write to {uri}: {error}. Check the URI, the bucket or volume, and that the "
            "credentials (spec.checkpoints.credentialsSecret) may write there"
        ) from error
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()


def probe_storage(config: TrainerConfig) -> list[str]:
    """Probe every URI the run writes to; returns the URIs checked."""
    checked = []
    for uri, field in ((config.checkpoints.uri, "checkpoints.uri"), (config.output.uri, "output.uri")):
        if uri is not None:
            probe(uri, field, config)
            checked.append(uri)
    return checked
