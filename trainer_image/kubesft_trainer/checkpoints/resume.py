"""Finds the newest checkpoint that is complete and intact, and brings it to local disk."""

from __future__ import annotations

import logging
from pathlib import Path

from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME, CheckpointManifest
from kubesft_trainer.checkpoints.store import CheckpointStore, CorruptCheckpointError

log = logging.getLogger(__name__)


def download_newest_intact(
    store: CheckpointStore, local_root: Path, forget_corrupt: bool
) -> tuple[CheckpointManifest, Path] | None:
    """The newest complete checkpoint whose files match their sha256, downloaded under ``local_root``.

    A corrupt or partial one is skipped with a warning naming it, and the next older one is tried.
    With ``forget_corrupt`` its manifest is deleted, so it no longer counts as complete: otherwise
    retention would keep it and delete the good ones. Storage errors propagate: an unreachable store
    is a reason to retry later, not to start over.
    """
    for manifest in store.complete():
        try:
            path = store.download(manifest, local_root / manifest.name)
        except CorruptCheckpointError as error:
            log.warning("skipping corrupt checkpoint %s", error)
            if forget_corrupt:
                store.store.delete_key(f"{manifest.name}/{MANIFEST_NAME}")
            continue
        return manifest, path
    return None
