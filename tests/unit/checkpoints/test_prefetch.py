"""The resume's checkpoint is chosen and downloaded in a process of its own, beside the imports and
the model and data loading; the train loop takes the result, the error or the log where it resumes."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

import psutil
import pytest

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.checkpoints import CheckpointManager
from kubesft_trainer.checkpoints.prefetch import NICENESS, ResumePrefetch, portable_error
from kubesft_trainer.checkpoints.resume import ResumeChoice
from kubesft_trainer.storage.objects import MissingObjectError, StorageError
from testing.devcluster.kube import wait_until
from testing.devcluster.processes import free_port
from tests.support.checkpoints import checkpoint_config, runtime_env, saved_checkpoints


def test_the_checkpoint_is_downloaded_before_the_resume_asks_for_it(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    config = checkpoint_config(root)
    saved_checkpoints(config, runtime_env(tmp_path / "a"), tmp_path, 4, 8)
    manager = CheckpointManager.from_config(config, runtime_env(tmp_path / "b", uid="uid-2"))
    landed = tmp_path / "b" / "resume" / "checkpoint-8"
    started = time.time()
    manager.start_resume()
    # The train loop imports and loads the model meanwhile; here it only waits for the files.
    wait_until(
        lambda: all((landed / name).is_file() for name in ("trainer_state.json", "optimizer.pt")) or None,
        timeout=30,
        describe=lambda: f"nothing downloaded under {landed} before prepare_resume",
    )
    expected = (tmp_path / "local-8" / "optimizer.pt").read_bytes()
    assert (landed / "optimizer.pt").read_bytes() == expected, "downloaded before prepare_resume"

    assert manager.prepare_resume() == landed
    answered = time.time()
    assert manager.resumed_from_step == 8
    assert manager.download_seconds is not None and manager.download_seconds > 0
    # When it was done, on the wall clock the startup phases use: after the start it took.
    assert manager.download_finished_at is not None
    assert started + manager.download_seconds <= manager.download_finished_at <= answered


def test_without_a_checkpoint_nothing_is_downloaded_and_no_download_time_is_reported(tmp_path: Path) -> None:
    manager = CheckpointManager.from_config(checkpoint_config(tmp_path / "ckpt"), runtime_env(tmp_path / "b"))
    manager.start_resume()
    assert manager.prepare_resume() is None
    assert manager.resumed_from_step is None and manager.download_seconds is None
    assert manager.download_finished_at is None


def test_a_store_that_cannot_be_reached_fails_where_the_resume_is_prepared(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = CheckpointSettings(uri="s3://bucket/ckpt", endpoint_url=endpoint)
    prefetch = ResumePrefetch(ResumeChoice(settings, None, 0, tmp_path / "resume"))
    with pytest.raises(StorageError, match="s3://bucket/ckpt"):
        prefetch.result()
    assert prefetch.seconds is not None
    assert not (tmp_path / "resume").exists(), "nothing downloaded"


def _prefetch_niceness() -> int | None:
    """The nice value of this process's spawned child, once it has one."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):  # one that ended meanwhile
            if any("spawn_main" in part for part in child.cmdline()):
                return int(child.nice())
    return None


def test_the_download_runs_at_the_lowest_cpu_priority_beside_the_imports(tmp_path: Path) -> None:
    # A store that takes the connection and never answers keeps the download running while its
    # priority is read; closing it ends the download with a storage error.
    own = os.nice(0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = CheckpointSettings(uri="s3://bucket/ckpt", endpoint_url=endpoint)
        prefetch = ResumePrefetch(ResumeChoice(settings, None, 0, tmp_path / "resume"))
        wait_until(
            lambda: _prefetch_niceness() == NICENESS or None,
            timeout=30,
            describe=lambda: f"the prefetch process runs at nice {_prefetch_niceness()}, not {NICENESS}",
        )
    assert os.nice(0) == own, "this process keeps its priority"
    with pytest.raises(StorageError):
        prefetch.result()


def test_an_error_that_cannot_cross_processes_keeps_its_kind_and_message() -> None:
    crossed = portable_error(MissingObjectError("s3://bucket/ckpt/checkpoint-4/optimizer.pt", "optimizer.pt"))
    assert type(crossed) is StorageError, "still a storage error: the attempt is retried"
    assert str(crossed) == "s3://bucket/ckpt/checkpoint-4/optimizer.pt does not exist"
    same = StorageError("s3://bucket: timed out")
    assert portable_error(same) is same
