"""Checkpoint files that live on other nodes: each rank of a sharded run writes its own shard, and
in a multi-node run those of other nodes never reach the node that uploads.

At every save, all ranks meet: each node names its files; every node other than global rank 0's
uploads the files rank 0's node lacks (its ranks' shards and RNG states), hashes them, and reports
them. Only then may rank 0 write the manifest, which lists them with its own: data first, manifest
last, as for any checkpoint. A node that failed to upload reports it, and that checkpoint gets no
manifest (retention removes its files later).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME, ManifestFile, checkpoint_name, sha256_of
from kubesft_trainer.checkpoints.store import CheckpointStore
from kubesft_trainer.storage.objects import StorageError

log = logging.getLogger(__name__)


class NodeUploadFailed(Exception):
    """Another node could not upload its part of a checkpoint."""


def _paths(folder: Path) -> list[str]:
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != MANIFEST_NAME
    )


def upload_assignments(listed: list[list[str] | None]) -> dict[int, list[str]]:
    """Which rank uploads which files: rank 0's node has its own; of the rest, the lowest rank
    naming a file uploads it."""
    seen = set(listed[0] or [])
    chosen: dict[int, list[str]] = {}
    for rank, paths in enumerate(listed):
        if rank == 0 or paths is None:
            continue
        new = [path for path in paths if path not in seen]
        seen.update(new)
        if new:
            chosen[rank] = new
    return chosen


def share_node_files(
    store: CheckpointStore, step: int, folder: Path, rank: int, local_rank: int
) -> list[ManifestFile]:
    """Upload this node's part of checkpoint ``step`` (a collective: every rank calls it) and return
    every other node's files for rank 0's manifest. Raises ``NodeUploadFailed`` on every rank when
    some node could not upload its part."""
    import torch.distributed as dist

    world = dist.get_world_size()
    listed: list[list[str] | None] = [None] * world
    dist.all_gather_object(listed, _paths(folder) if local_rank == 0 else None)
    mine = upload_assignments(listed).get(rank, [])
    entries: list[ManifestFile] | str = []
    try:
        uploaded = []
        for path in mine:
            local = folder / path
            uploaded.append(ManifestFile(path=path, size=local.stat().st_size, sha256=sha256_of(local)))
            store.store.upload_file(local, f"{checkpoint_name(step)}/{path}")
        entries = uploaded
    except (StorageError, OSError) as error:
        entries = f"rank {rank}: {error}"
    reports: list[list[ManifestFile] | str | None] = [None] * world
    dist.all_gather_object(reports, entries)
    failures = [report for report in reports if isinstance(report, str)]
    if failures:
        raise NodeUploadFailed(f"{checkpoint_name(step)}: {'; '.join(failures)}")
    files = [item for report in reports if isinstance(report, list) for item in report]
    if mine:
        log.info("uploaded this node's %d file(s) of %s", len(mine), checkpoint_name(step))
    return files
