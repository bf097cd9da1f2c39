"""Checkpoints in an object store: a checkpoint exists once its manifest, written last, is valid.

Layout under the store's URI: ``checkpoint-<step>/<files>`` as transformers writes them, plus
``checkpoint-<step>/kubesft-manifest.json``. There is no "latest" pointer: the newest checkpoint is
the one with the highest step among valid manifests, so it can never get ahead of the data.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from kubesft_trainer.checkpoints.manifest import (
    MANIFEST_NAME,
    CheckpointManifest,
    ManifestFile,
    RunStamp,
    build_manifest,
    checkpoint_name,
    file_problem,
    step_of,
)
from kubesft_trainer.storage.objects import MissingObjectError, ObjectStore, StorageError, local_target

log = logging.getLogger(__name__)

VERIFY_THREADS = 2
"""Files hashed at once while the rest of a checkpoint downloads (hashlib releases the GIL)."""


class CorruptCheckpointError(StorageError):
    """A checkpoint's files do not match its manifest."""


class CheckpointStore:
    """Complete checkpoints under one URI, newest first by step; uploads carry ``stamp``."""

    def __init__(self, store: ObjectStore, stamp: RunStamp | None = None) -> None:
        self.store = store
        self.stamp = stamp

    @property
    def uri(self) -> str:
        return self.store.uri

    def location(self, step: int) -> str:
        return self.store.location(checkpoint_name(step))

    def _folders(self) -> dict[int, set[str]]:
        """Every ``checkpoint-<step>`` folder in the store with the names of its objects."""
        folders: dict[int, set[str]] = {}
        for key in self.store.list_keys():
            folder, _, rest = key.partition("/")
            step = step_of(folder)
            if step is not None and rest:
                folders.setdefault(step, set()).add(rest)
        return folders

    def complete(self) -> list[CheckpointManifest]:
        """Manifests of the complete checkpoints, newest first. Invalid manifests are skipped with a warning."""
        manifests = []
        for step, names in sorted(self._folders().items(), reverse=True):
            if MANIFEST_NAME not in names:
                continue
            key = f"{checkpoint_name(step)}/{MANIFEST_NAME}"
            try:
                data = self.store.read_bytes(key)
            except StorageError:
                # Deleted since the listing (retention deletes manifests first): no longer complete.
                if not self.store.exists(key):
                    continue
                raise
            try:
                manifest = CheckpointManifest.parse(data, self.store.location(key))
            except ValueError as error:
                log.warning("skipping checkpoint %s: %s", self.location(step), error)
                continue
            if manifest.step != step:
                log.warning(
                    "skipping checkpoint %s: its manifest is for step %d", self.location(step), manifest.step
                )
                continue
            manifests.append(manifest)
        return manifests

    def upload(
        self, directory: Path, step: int, elsewhere: Sequence[ManifestFile] = ()
    ) -> CheckpointManifest:
        """Upload a local checkpoint folder, then its manifest. Until the manifest lands it does not exist.

        ``directory`` must not change meanwhile (the uploader hands over a frozen snapshot): its files
        are hashed for the manifest while they upload, so hashing adds no time of its own.
        ``elsewhere`` are files other nodes already uploaded into the folder; the manifest lists them too.
        """
        name = checkpoint_name(step)
        kept = {f"{name}/{item.path}" for item in elsewhere}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-hash") as hashing:
            hashed = hashing.submit(build_manifest, directory, step, self.stamp)
            # Leftovers of an earlier attempt at the same step (a stale manifest above all) go first,
            # so a half-overwritten folder is never taken for complete.
            if kept:
                for key in self.store.list_keys(name):
                    if key not in kept:
                        self.store.delete_key(key)
            else:
                self.store.delete_prefix(name)
            self.store.upload_directory(directory, name)
            manifest = hashed.result()
        if elsewhere:
            ours = {item.path for item in manifest.files}
            extra = [item for item in elsewhere if item.path not in ours]
            manifest = manifest.model_copy(
                update={"files": sorted([*manifest.files, *extra], key=lambda f: f.path)}
            )
        self.store.write_bytes(f"{name}/{MANIFEST_NAME}", manifest.to_json())
        return manifest

    def download(self, manifest: CheckpointManifest, directory: Path) -> Path:
        """Download a complete checkpoint's files into ``directory`` and verify every file's sha256.

        Each file is hashed as soon as it is down, while the others still download, so the check
        costs little more than hashing the last file to arrive.
        """
        if directory.exists():
            shutil.rmtree(directory)
        listed = {f"{manifest.name}/{item.path}": item for item in manifest.files}
        checks: dict[str, Future[str | None]] = {}
        with ThreadPoolExecutor(
            max_workers=VERIFY_THREADS, thread_name_prefix="checkpoint-verify"
        ) as hashing:

            def landed(key: str, _local: Path) -> None:
                checks[key] = hashing.submit(file_problem, directory, listed[key])

            try:
                self.store.download_files(
                    [(key, local_target(directory, item.path)) for key, item in listed.items()],
                    landed,
                    sizes={key: item.size for key, item in listed.items()},
                )
            except MissingObjectError as missing:
                shutil.rmtree(directory, ignore_errors=True)
                path = missing.key.removeprefix(f"{manifest.name}/")
                raise CorruptCheckpointError(f"{self.location(manifest.step)}: {path} is missing") from None
            problems = [
                problem
                for key, item in listed.items()
                if (problem := checks[key].result() if key in checks else file_problem(directory, item))
            ]
        if problems:
            shutil.rmtree(directory, ignore_errors=True)
            raise CorruptCheckpointError(f"{self.location(manifest.step)}: {'; '.join(problems[:3])}")
        return directory

    def delete(self, step: int) -> None:
        """Manifest first: a checkpoint whose deletion is cut short is incomplete, never half complete."""
        name = checkpoint_name(step)
        self.store.delete_key(f"{name}/{MANIFEST_NAME}")
        self.store.delete_prefix(name)

    def apply_retention(self, keep: int) -> list[int]:
        """Keep the ``keep`` newest complete checkpoints; delete older ones and abandoned partial uploads.

        Returns the deleted steps. Partial folders newer than the newest complete checkpoint stay:
        they may be an upload still under way.
        """
        complete = self.complete()
        if not complete:
            return []
        kept = {manifest.step for manifest in complete[:keep]}
        newest = complete[0].step
        doomed = [step for step in self._folders() if step not in kept and step < newest]
        for step in sorted(doomed):
            self.delete(step)
        return sorted(doomed)

    def delete_all(self) -> list[int]:
        steps = sorted(self._folders())
        for step in steps:
            self.delete(step)
        return steps
