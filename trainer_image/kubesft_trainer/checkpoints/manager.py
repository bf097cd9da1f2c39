"""What the train loop sees of checkpointing: resume, callbacks, the preemption verdict and the final wait."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.checkpoints.fingerprint import run_stamp
from kubesft_trainer.checkpoints.manifest import ManifestFile, RunStamp, checkpoint_name
from kubesft_trainer.checkpoints.node_files import NodeUploadFailed, share_node_files
from kubesft_trainer.checkpoints.preemption import PreemptionSignal
from kubesft_trainer.checkpoints.prefetch import ResumePrefetch
from kubesft_trainer.checkpoints.resume import ResumeChoice
from kubesft_trainer.checkpoints.snapshot import snapshot
from kubesft_trainer.checkpoints.store import CheckpointStore
from kubesft_trainer.checkpoints.uploader import CheckpointUploader, Snapshot
from kubesft_trainer.checkpoints.warm_start import download_warm_start
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.reporting import metrics
from kubesft_trainer.storage.objects import open_store

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from kubesft_trainer.checkpoints.callbacks import CheckpointCallback
    from kubesft_trainer.config.runtime_env import RuntimeEnv

log = logging.getLogger(__name__)

STAGING_DIR = "checkpoint-uploads"
RESUME_DIR = "resume"
WARM_START_DIR = "warm-start"
_SELECTION_FILE = "selected.json"


def grace_margin(grace_seconds: float) -> float:
    """Seconds of the grace period kept back for the process to exit after the final upload."""
    return max(1.0, min(5.0, grace_seconds * 0.1))


class CheckpointManager:
    """Checkpoints of one trainer process.

    Global rank 0 uploads each checkpoint. In a multi-node run every other node first uploads the
    files only it has (the shards and RNG states of its ranks, ``node_files``), and rank 0's manifest
    lists them as well.
    """

    def __init__(
        self,
        settings: CheckpointSettings,
        work_dir: Path,
        grace_seconds: float,
        store: CheckpointStore | None,
        rank: int = 0,
        local_rank: int = 0,
        stamp: RunStamp | None = None,
        nnodes: int = 1,
    ) -> None:
        self.nnodes = nnodes
        self.settings = settings
        self.stamp = stamp
        self.work_dir = work_dir
        self.grace_seconds = grace_seconds
        self.store = store
        self.rank = rank
        self.local_rank = local_rank
        self.resumed_from_step: int | None = None
        self.preemption = PreemptionSignal()
        self.uploader = CheckpointUploader(store, settings.keep) if store is not None and rank == 0 else None
        self._callback: CheckpointCallback | None = None
        self._carried: dict[str, bytes] = {}
        self._signal_installed = False
        self._selection: ResumePrefetch | None = None
        self.download_seconds: float | None = None
        """On the node's first process, when resuming: how long finding and downloading the
        checkpoint took, beside the imports and the model and data loading."""
        self.download_finished_at: float | None = None
        """With ``download_seconds``: when that was done (Unix time)."""
        if self.uploader is not None:
            shutil.rmtree(self.staging_dir, ignore_errors=True)

    @classmethod
    def from_config(cls, config: TrainerConfig, env: RuntimeEnv) -> CheckpointManager:
        settings, stamp = config.checkpoints, run_stamp(config, env)
        store = CheckpointStore(open_store(settings.uri, settings), stamp) if settings.uri else None
        return cls(
            settings,
            env.work_dir,
            env.grace_seconds,
            store,
            rank=env.rank,
            local_rank=env.local_rank,
            stamp=stamp,
            nnodes=env.nnodes,
        )

    @property
    def staging_dir(self) -> Path:
        return self.work_dir / STAGING_DIR

    @property
    def preempted(self) -> bool:
        """Training stopped early because of SIGTERM (here or on another rank)."""
        return self._callback is not None and self._callback.stopped_for_preemption

    def start_resume(self) -> None:
        """Start choosing and downloading the checkpoint to resume from in a process of its own,
        so that it runs beside the imports and the model and data loading; ``prepare_resume`` takes
        its result."""
        if self.store is None or self.local_rank != 0 or self._selection is not None:
            return
        choice = ResumeChoice(self.settings, self.stamp, self.rank, self.work_dir / RESUME_DIR)
        self._selection = ResumePrefetch(choice)

    def prepare_resume(self) -> Path | None:
        """With ``resume: auto``, the local copy of the newest complete, intact checkpoint, else None.

        Raises ``ConfigError`` when the checkpoints under the URI were made with settings a resume
        must not change; then nothing under it is downloaded or deleted. Storage errors of a
        download that ``start_resume`` began are raised here.
        """
        if self.store is None:
            log.info("checkpoints.uri is not set: checkpoints stay in the pod and a restart starts over")
            return None
        local_root = self.work_dir / RESUME_DIR
        selection = local_root / _SELECTION_FILE
        if self.local_rank == 0:
            if self._selection is None:
                self.start_resume()
            assert self._selection is not None
            chosen = self._selection.result()
            local_root.mkdir(parents=True, exist_ok=True)
            selection.write_text(json.dumps(chosen))
        _barrier()
        chosen = json.loads(selection.read_text())
        if chosen is not None and "refused" in chosen:
            raise ConfigError(chosen["refused"])
        if chosen is None:
            if self.settings.resume == "auto":
                log.info(
                    "no complete checkpoint under %s: training starts from the beginning", self.store.uri
                )
            return None
        step, path = int(chosen["step"]), Path(chosen["path"])
        self.resumed_from_step = step
        if self._selection is not None:
            self.download_seconds = self._selection.seconds
            self.download_finished_at = self._selection.finished_at
        metrics.CHECKPOINT_RESUMED_FROM_STEP.set(step)
        if self.uploader is not None:
            self.uploader.set_latest(step, self.store.location(step))
        log.info("resuming from %s (step %d)", self.store.location(step), step)
        return path

    def prepare_warm_start(self) -> Path | None:
        """The local copy of ``checkpoints.resumeFrom`` to take the weights from, or None."""
        uri = self.settings.resume_from
        if uri is None:
            return None
        target = self.work_dir / WARM_START_DIR
        if self.local_rank == 0:
            download_warm_start(uri, self.settings, target)
        _barrier()
        log.info("warm start from %s: its weights, with a fresh optimizer and schedule", uri)
        return target

    def callbacks(self) -> list[TrainerCallback]:
        """The Trainer callbacks; also installs the SIGTERM handler (call from the main thread)."""
        from kubesft_trainer.checkpoints.callbacks import CheckpointCallback

        if not self._signal_installed:
            self._signal_installed = self.preemption.install()
        shares = self.nnodes > 1 and self.store is not None
        uploads = self._on_save if self.uploader is not None or shares else None
        self._callback = CheckpointCallback(self.preemption, uploads)
        return [self._callback]

    def carry(self, name: str, data: bytes) -> None:
        """A file that each later checkpoint of this run holds beside the Trainer's own."""
        self._carried[name] = data

    def _on_save(self, step: int, folder: Path) -> None:
        elsewhere: list[ManifestFile] = []
        if self.nnodes > 1 and self.store is not None:
            try:
                elsewhere = share_node_files(self.store, step, folder, self.rank, self.local_rank)
            except NodeUploadFailed as error:
                log.warning(
                    "%s is not uploaded: another node could not upload its part (%s)",
                    checkpoint_name(step),
                    error,
                )
                return
        if self.uploader is None:
            return
        for name, data in self._carried.items():
            (folder / name).write_bytes(data)
        frozen = snapshot(folder, self.staging_dir / checkpoint_name(step))
        self.uploader.submit(Snapshot(step=step, directory=frozen, elsewhere=tuple(elsewhere)))

    def finish(self, timeout: float | None) -> None:
        """Wait for every upload. After SIGTERM the wait ends within the grace period, less a margin.

        Raises ``StorageError`` when the last checkpoint could not be uploaded.
        """
        if self.uploader is None:
            return
        deadlines = []
        if timeout is not None:
            deadlines.append(time.monotonic() + timeout)
        if self.preemption.received_at is not None:
            deadlines.append(
                self.preemption.received_at + self.grace_seconds - grace_margin(self.grace_seconds)
            )
        self.uploader.finish(min(deadlines) if deadlines else None)

    def progress_fields(self) -> dict[str, Any]:
        """The checkpoint fields of ``ProgressReport`` (by field name)."""
        state = self.uploader.state() if self.uploader is not None else None
        return {
            "latest_checkpoint": state.latest_uri if state else None,
            "checkpoint_upload_failures": state.failures if state else 0,
            "checkpoint_status": state.status if state else None,
            "resumed_from_step": self.resumed_from_step,
        }


def _barrier() -> None:
    """All processes wait here when a process group exists (the Trainer creates it before resume)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
