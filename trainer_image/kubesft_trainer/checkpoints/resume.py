"""Chooses the checkpoint a node resumes from: the newest one that is complete and intact, brought
to local disk, after checking that it belongs to this run's settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints.fingerprint import refusal, schedule_changes
from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME, CheckpointManifest, RunStamp
from kubesft_trainer.checkpoints.store import CheckpointStore, CorruptCheckpointError
from kubesft_trainer.storage.objects import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumeChoice:
    """What choosing needs, plain enough to hand to another process."""

    settings: CheckpointSettings
    stamp: RunStamp | None
    rank: int
    local_root: Path


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


def choose(choice: ResumeChoice) -> dict[str, Any] | None:
    """What the node resumes from: ``{step, path}``, None, or ``{refused}`` with the reason.

    Checkpoints of other settings are refused before anything under the URI is downloaded or
    deleted. With ``resume: never`` global rank 0 deletes what an earlier run left.
    """
    settings, stamp = choice.settings, choice.stamp
    assert settings.uri is not None
    store = CheckpointStore(open_store(settings.uri, settings), stamp)
    complete = store.complete()
    if stamp is not None:
        problem = refusal(stamp, complete, store.uri)
        if problem is not None:
            return {"refused": problem}
    if settings.resume == "never":
        if choice.rank == 0:
            deleted = store.delete_all()
            if deleted:
                log.warning(
                    "checkpoints.resume is never: deleted %d checkpoints an earlier run left under %s",
                    len(deleted),
                    store.uri,
                )
        return None
    found = download_newest_intact(store, choice.local_root, forget_corrupt=choice.rank == 0)
    if found is None:
        return None
    if stamp is not None and choice.rank == 0:
        changed = schedule_changes(stamp, found[0])
        if changed:
            log.warning(
                "resuming %s with other settings than it was saved with (%s); the optimizer and "
                "learning-rate schedule continue from their saved state",
                found[0].name,
                "; ".join(changed),
            )
    return {"step": found[0].step, "path": str(found[1])}
