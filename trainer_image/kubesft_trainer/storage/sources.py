"""Local paths for the model and data URIs of a spec: object storage is downloaded to a cache once."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.errors import TrainerError

log = logging.getLogger(__name__)

_COMPLETE = ".kubesft-complete"


def _cache_dir(cache_root: Path, uri: str) -> Path:
    return cache_root / hashlib.sha256(uri.encode()).hexdigest()[:16]


def local_copy(
    uri: str,
    field: str,
    settings: CheckpointSettings,
    cache_root: Path,
    single_file_suffixes: tuple[str, ...] = (),
) -> Path:
    """A local path holding what ``uri`` names: the path itself for local and pvc:// URIs, else a
    cached download (a file when ``uri`` ends in one of ``single_file_suffixes``, else the prefix).

    Raises ``TrainerError`` (retryable) when the download fails, and ``FileNotFoundError`` with
    ``field`` in the message when a local path does not exist.
    """
    from kubesft_trainer.storage.objects import open_store, parse_storage_uri

    parsed = parse_storage_uri(uri)
    if parsed.local_path is not None:
        local = Path(parsed.local_path)
        if not local.exists():
            raise FileNotFoundError(
                f"{field}: {uri} does not exist" + (f" ({local})" if str(local) != uri else "")
            )
        return local
    target = _cache_dir(cache_root, uri)
    single_file = uri.lower().endswith(single_file_suffixes) if single_file_suffixes else False
    result = target / parsed.name if single_file else target / "files"
    if (target / _COMPLETE).exists():
        log.info("using the cached copy of %s in %s", uri, target)
        return result
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    log.info("downloading %s to %s", uri, target)
    try:
        if single_file:
            store = open_store(str(parsed.parent), settings)
            if not store.exists(parsed.name):
                raise FileNotFoundError(f"{field}: {uri} does not exist")
            store.download_file(parsed.name, result)
        else:
            paths = open_store(uri, settings).download_directory("", result)
            if not paths:
                raise FileNotFoundError(f"{field}: nothing found under {uri}")
    except TrainerError as error:
        raise TrainerError(f"{field}: downloading {uri} failed: {error}") from error
    (target / _COMPLETE).touch()
    return result
