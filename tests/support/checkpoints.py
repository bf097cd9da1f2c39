"""Checkpoint folders as transformers writes them, and the configs and runs that save and resume
them, for the checkpoint store, uploader and resume tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.checkpoints.fingerprint import run_stamp
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.storage.objects import open_store
from tests.support.trainer import trainer_config


def fake_checkpoint(folder: Path, step: int, weights_bytes: int = 50_000) -> Path:
    """The files transformers writes for a full-model checkpoint, with step-specific contents."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(os.urandom(weights_bytes))
    (folder / "optimizer.pt").write_bytes(os.urandom(2 * weights_bytes))
    (folder / "scheduler.pt").write_bytes(os.urandom(1000))
    (folder / "rng_state.pth").write_bytes(os.urandom(500))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def checkpoint_config(uri: Path, resume: str = "auto", **training: Any) -> TrainerConfig:
    raw = trainer_config(Path("/m"), Path("/d.jsonl"), Path("/out"), training=training)
    raw["checkpoints"].update(uri=str(uri), resume=resume)
    return TrainerConfig.model_validate(raw)


def runtime_env(work: Path, name: str = "chat", uid: str = "uid-1") -> RuntimeEnv:
    return RuntimeEnv.from_environ(
        {
            "KUBESFT_WORK_DIR": str(work),
            "KUBESFT_NAMESPACE": "team-a",
            "KUBESFT_JOB_NAME": name,
            "KUBESFT_JOB_UID": uid,
        }
    )


def saved_checkpoints(config: TrainerConfig, env: RuntimeEnv, tmp_path: Path, *steps: int) -> CheckpointStore:
    """Checkpoints under ``checkpoints.uri`` as the run of ``config`` uploads them."""
    assert config.checkpoints.uri is not None
    store = CheckpointStore(open_store(config.checkpoints.uri, config.checkpoints), run_stamp(config, env))
    for step in steps:
        store.upload(fake_checkpoint(tmp_path / f"local-{step}", step), step)
    return store
