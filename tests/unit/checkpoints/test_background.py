"""The resume's checkpoint is found and downloaded on a thread of its own, beside the model and data
loading, and the train loop takes the result (or the error) where it resumes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kubesft_trainer.checkpoints import CheckpointManager
from kubesft_trainer.checkpoints.background import Background
from kubesft_trainer.storage.objects import StorageError
from tests.support.checkpoints import checkpoint_config, runtime_env, saved_checkpoints


def test_the_checkpoint_is_downloaded_before_the_resume_asks_for_it(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    config = checkpoint_config(root)
    saved_checkpoints(config, runtime_env(tmp_path / "a"), tmp_path, 4, 8)
    manager = CheckpointManager.from_config(config, runtime_env(tmp_path / "b", uid="uid-2"))
    landed = tmp_path / "b" / "resume" / "checkpoint-8"
    manager.start_resume()
    # The train loop loads the model and data meanwhile; here it only waits for the files to land.
    for _ in range(600):
        if all((landed / name).is_file() for name in ("trainer_state.json", "optimizer.pt")):
            break
        time.sleep(0.05)
    expected = (tmp_path / "local-8" / "optimizer.pt").read_bytes()
    assert (landed / "optimizer.pt").read_bytes() == expected, "downloaded before prepare_resume"

    assert manager.prepare_resume() == landed
    assert manager.resumed_from_step == 8
    assert manager.download_seconds is not None and manager.download_seconds > 0


def test_without_a_checkpoint_nothing_is_downloaded_and_no_download_time_is_reported(tmp_path: Path) -> None:
    manager = CheckpointManager.from_config(checkpoint_config(tmp_path / "ckpt"), runtime_env(tmp_path / "b"))
    manager.start_resume()
    assert manager.prepare_resume() is None
    assert manager.resumed_from_step is None and manager.download_seconds is None


def test_an_error_on_the_thread_is_raised_where_the_result_is_taken() -> None:
    def unreachable() -> int:
        raise StorageError("s3://bucket/ckpt: could not be reached")

    work = Background(unreachable, name="test-background")
    with pytest.raises(StorageError, match="could not be reached"):
        work.result()
    assert work.seconds is not None


def test_the_thread_does_not_hold_the_process_open() -> None:
    """A run that fails while the download goes on exits without waiting for it."""
    release = threading.Event()
    work = Background(release.wait, name="test-held")
    (thread,) = [t for t in threading.enumerate() if t.name == "test-held"]
    assert thread.daemon
    release.set()
    assert work.result() is True
