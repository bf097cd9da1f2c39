"""Checkpoints tied to the run that made them: the stamp in each manifest, and what a resume does
with checkpoints of other settings (refuses, touching nothing) or another schedule (warns)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.checkpoints import CheckpointManager, CheckpointStore
from kubesft_trainer.checkpoints.fingerprint import run_stamp
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.storage.objects import open_store
from tests.support.checkpoints import checkpoint_config, fake_checkpoint, runtime_env, saved_checkpoints


def _objects(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_each_manifest_records_the_job_and_the_settings_a_resume_must_not_change(tmp_path: Path) -> None:
    config = checkpoint_config(tmp_path / "ckpt")
    store = saved_checkpoints(config, runtime_env(tmp_path / "w"), tmp_path, 4)
    (manifest,) = store.complete()
    assert str(manifest.job) == "team-a/chat (uid uid-1)"
    assert manifest.settings is not None and manifest.schedule is not None
    assert manifest.settings["model.uri"] == "/m" and manifest.settings["dataset.uri"] == "/d.jsonl"
    assert manifest.settings["training.maxLength"] == 128 and manifest.settings["dataset.revision"] == "main"
    assert "lora.r" not in manifest.settings, "the LoRA shape counts only with LoRA on"
    assert manifest.schedule["training.learningRate"] == 1e-3
    assert manifest.fingerprint == run_stamp(config, runtime_env(tmp_path / "other", uid="uid-2")).fingerprint
    lora = TrainerConfig.model_validate(
        {**config.model_dump(by_alias=True), "lora": {"enabled": True, "r": 8}}
    )
    lora_settings = run_stamp(lora, runtime_env(tmp_path / "w")).settings
    assert lora_settings is not None and lora_settings["lora.r"] == 8


@pytest.mark.parametrize("resume", ["auto", "never"])
def test_checkpoints_of_other_settings_fail_the_job_and_nothing_under_the_prefix_changes(
    tmp_path: Path, resume: str
) -> None:
    root = tmp_path / "ckpt"
    saved_checkpoints(checkpoint_config(root), runtime_env(tmp_path / "a"), tmp_path, 4, 8)
    before = _objects(root)
    other = checkpoint_config(root, resume, maxLength=256)
    env = runtime_env(tmp_path / "b", name="other-chat", uid="uid-9")
    manager = CheckpointManager.from_config(other, env)
    with pytest.raises(ConfigError) as caught:
        manager.prepare_resume()
    message = str(caught.value)
    assert message.startswith(
        f"spec.checkpoints.uri: {root} holds checkpoints of SFTJob team-a/chat (uid uid-1)"
    )
    assert "training.maxLength: 128 there, 256 here" in message
    assert "checkpoints.resumeFrom" in message
    assert _objects(root) == before, "nothing downloaded over, deleted or rewritten"
    assert not (tmp_path / "b" / "resume" / "checkpoint-8").exists()


def test_the_same_settings_resume_with_another_schedule_and_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ckpt"
    saved_checkpoints(checkpoint_config(root), runtime_env(tmp_path / "a"), tmp_path, 4)
    # The job deleted and created again: a new uid, a new learning rate and batch size.
    again = checkpoint_config(root, learningRate=5e-4, perDeviceBatchSize=4)
    manager = CheckpointManager.from_config(again, runtime_env(tmp_path / "b", uid="uid-2"))
    with caplog.at_level(logging.WARNING):
        path = manager.prepare_resume()
    assert path is not None and path.name == "checkpoint-4" and manager.resumed_from_step == 4
    assert "training.learningRate: 0.001 there, 0.0005 here" in caplog.text
    assert "training.perDeviceBatchSize: 8 there, 4 here" in caplog.text


def test_checkpoints_of_an_earlier_version_without_a_stamp_still_resume(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    config = checkpoint_config(root)
    assert config.checkpoints.uri is not None
    unstamped = CheckpointStore(open_store(config.checkpoints.uri, config.checkpoints))
    unstamped.upload(fake_checkpoint(tmp_path / "local", 6), 6)
    assert unstamped.complete()[0].settings is None
    manager = CheckpointManager.from_config(
        checkpoint_config(root, maxLength=512), runtime_env(tmp_path / "b")
    )
    assert manager.prepare_resume() is not None and manager.resumed_from_step == 6
