"""The background uploader with storage down: its status names the failure, retries back off,
and finish gives up at its deadline."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.checkpoints.manifest import ManifestFile
from kubesft_trainer.checkpoints.uploader import CheckpointUploader, Snapshot, UploadState
from kubesft_trainer.storage.objects import StorageError
from tests.support.checkpoints import fake_checkpoint

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)


def _wait_for_state(
    uploader: CheckpointUploader, probe: Callable[[UploadState], bool], what: str
) -> UploadState:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = uploader.state()
        if probe(state):
            return state
        time.sleep(0.02)
    raise AssertionError(f"{what} never happened; the uploader's state is {uploader.state()}")


def test_upload_status_keeps_naming_the_failure_until_an_upload_lands(
    store: CheckpointStore, moto_s3: MotoS3, tmp_path: Path
) -> None:
    uploader = CheckpointUploader(store, keep=3, first_retry_seconds=0.05, max_retry_seconds=0.2)
    uploader.submit(Snapshot(1, fake_checkpoint(tmp_path / "c1", 1, weights_bytes=1000)))
    _wait_for_state(uploader, lambda s: s.latest_step == 1, "the first upload")

    moto_s3.stop()
    try:
        uploader.submit(Snapshot(2, fake_checkpoint(tmp_path / "c2", 2, weights_bytes=1000)))
        failed = _wait_for_state(uploader, lambda s: s.failures > 0, "a failed upload")
        assert failed.last_error is not None and failed.last_error.startswith("checkpoint-2, attempt 1: ")
        # A newer save replaces the failing one; its upload must still say that storage is failing.
        uploader.submit(Snapshot(3, fake_checkpoint(tmp_path / "c3", 3, weights_bytes=1000)))
        retrying = _wait_for_state(
            uploader, lambda s: (s.status or "").startswith("uploading checkpoint-3"), "the newer upload"
        )
        assert "(the last upload failed: checkpoint-" in (retrying.status or ""), retrying
        assert retrying.latest_step == 1
    finally:
        moto_s3.start()

    landed = _wait_for_state(uploader, lambda s: s.latest_step == 3, "the upload after storage came back")
    uploader.finish(deadline=None)
    assert landed.status == "checkpoint-3 complete" and landed.last_error is None
    assert [m.step for m in store.complete()] == [3, 1]


def test_with_storage_down_retries_back_off_and_finish_gives_up_at_its_deadline(
    store: CheckpointStore, moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploader = CheckpointUploader(store, keep=3, first_retry_seconds=0.1, max_retry_seconds=0.3)
    uploader.submit(Snapshot(1, fake_checkpoint(tmp_path / "c1", 1, weights_bytes=1000)))
    _wait_for_state(uploader, lambda s: s.latest_step == 1, "the first upload")

    attempts: list[tuple[float, float]] = []
    upload = store.upload

    def recorded(directory: Path, step: int, elsewhere: Sequence[ManifestFile] = ()) -> object:
        started = time.monotonic()
        try:
            return upload(directory, step, elsewhere)
        finally:
            attempts.append((started, time.monotonic()))

    monkeypatch.setattr(store, "upload", recorded)
    moto_s3.stop()
    try:
        uploader.submit(Snapshot(2, fake_checkpoint(tmp_path / "c2", 2, weights_bytes=1000)))
        _wait_for_state(uploader, lambda s: s.failures >= 4, "four failed uploads")
        backed_off = list(attempts)
        with pytest.raises(StorageError, match="checkpoint-2"):
            uploader.finish(deadline=time.monotonic() + 2)
    finally:
        moto_s3.start()
    # Between a failed attempt's end and the next one's start: the backoff, doubling from 0.1 s
    # up to the 0.3 s cap.
    waits = [later[0] - earlier[1] for earlier, later in itertools.pairwise(backed_off)]
    assert len(waits) >= 3
    for number, wait in enumerate(waits[:3]):
        assert wait >= min(0.1 * 2**number, 0.3) - 0.01, waits
    # The failed upload left the complete checkpoint the latest one.
    assert [m.step for m in store.complete()][:1] == [1]
