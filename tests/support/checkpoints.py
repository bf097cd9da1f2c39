"""Checkpoint folders as transformers writes them, for the checkpoint store and uploader tests."""

from __future__ import annotations

import json
import os
from pathlib import Path


def fake_checkpoint(folder: Path, step: int, weights_bytes: int = 50_000) -> Path:
    """The files transformers writes for a full-model checkpoint, with step-specific contents."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(os.urandom(weights_bytes))
    (folder / "optimizer.pt").write_bytes(os.urandom(2 * weights_bytes))
    (folder / "scheduler.pt").write_bytes(os.urandom(1000))
    (folder / "rng_state.pth").write_bytes(os.urandom(500))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder
