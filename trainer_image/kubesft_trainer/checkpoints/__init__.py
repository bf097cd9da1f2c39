"""Checkpoints in object storage: atomic saves, asynchronous upload, retention and exact resume.

``CheckpointStore`` knows which checkpoints under a URI are complete (a valid manifest, written
last); ``CheckpointManager`` is what the train loop uses: ``start_resume()`` (as early as the
process can), ``prepare_resume()``, ``callbacks()``, ``preempted``, ``finish()`` and
``progress_fields()``.
"""

from __future__ import annotations

from kubesft_trainer.checkpoints.manager import CheckpointManager
from kubesft_trainer.checkpoints.manifest import CheckpointManifest
from kubesft_trainer.checkpoints.preemption import PreemptedError
from kubesft_trainer.checkpoints.store import CheckpointStore, CorruptCheckpointError

__all__ = [
    "CheckpointManager",
    "CheckpointManifest",
    "CheckpointStore",
    "CorruptCheckpointError",
    "PreemptedError",
]
