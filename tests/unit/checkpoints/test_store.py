"""Complete checkpoints in S3 (moto on loopback): manifests written last, resume choice, retention."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_trainer.checkpoints import CheckpointStore, CorruptCheckpointError
from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME, sha256_of
from kubesft_trainer.checkpoints.resume import download_newest_intact
from kubesft_trainer.checkpoints.uploader import CheckpointUploader, Snapshot, UploadState
from kubesft_trainer.storage.objects import StorageError, open_store

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)

ROOT = Path(__file__).resolve().parents[3]


def fake_checkpoint(folder: Path, step: int, weights_bytes: int = 50_000) -> Path:
    """The files transformers writes for a full-model checkpoint, with step-specific contents."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(os.urandom(weights_bytes))
    (folder / "optimizer.pt").write_bytes(os.urandom(2 * weights_bytes))
    (folder / "scheduler.pt").write_bytes(os.urandom(1000))
    (folder / "rng_state.pth").write_bytes(os.urandom(500))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


@pytest.fixture
def store(moto_s3: MotoS3, s3_bucket: str) -> CheckpointStore:
    uri = f"s3://{s3_bucket}/jobs/a/checkpoints"
    return CheckpointStore(open_store(uri, moto_s3.settings(uri)))


def test_round_trip_save_list_download_and_verify(store: CheckpointStore, tmp_path: Path) -> None:
    source = fake_checkpoint(tmp_path / "local" / "checkpoint-5", 5)
    manifest = store.upload(source, 5)

    assert [m.step for m in store.complete()] == [5]
    listed = {item.path: item for item in manifest.files}
    assert sorted(listed) == sorted(p.name for p in source.iterdir())
    for path in source.iterdir():
        assert listed[path.name].size == path.stat().st_size
        assert listed[path.name].sha256 == sha256_of(path)

    stored = json.loads(store.store.read_bytes(f"checkpoint-5/{MANIFEST_NAME}"))
    assert stored["step"] == 5 and stored["format"] == "kubesft.io/checkpoint/v1"

    copy = store.download(manifest, tmp_path / "copy")
    for path in source.iterdir():
        assert (copy / path.name).read_bytes() == path.read_bytes()
    assert not (copy / MANIFEST_NAME).exists()


def test_latest_comes_from_complete_manifests_only(store: CheckpointStore, tmp_path: Path) -> None:
    store.upload(fake_checkpoint(tmp_path / "c10", 10), 10)
    # A newer checkpoint whose files landed but whose manifest did not: it does not exist.
    store.store.upload_directory(fake_checkpoint(tmp_path / "c20", 20), "checkpoint-20")
    # A manifest that does not parse, and one that names another step.
    store.store.upload_directory(fake_checkpoint(tmp_path / "c30", 30), "checkpoint-30")
    store.store.write_bytes(f"checkpoint-30/{MANIFEST_NAME}", b'{"step": 30, "files": [')
    store.store.upload_directory(fake_checkpoint(tmp_path / "c40", 40), "checkpoint-40")
    store.store.write_bytes(
        f"checkpoint-40/{MANIFEST_NAME}", store.store.read_bytes(f"checkpoint-10/{MANIFEST_NAME}")
    )

    latest = store.latest()
    assert latest is not None and latest.step == 10
    assert [m.step for m in store.complete()] == [10]


def test_an_upload_killed_half_way_never_becomes_latest(
    moto_s3: MotoS3, store: CheckpointStore, tmp_path: Path
) -> None:
    store.upload(fake_checkpoint(tmp_path / "c10", 10), 10)
    big = fake_checkpoint(tmp_path / "c20", 20)
    # Large enough that its multipart upload is still running when the small files have landed.
    with (big / "model.safetensors").open("r+b") as handle:
        handle.truncate(192 * 1024 * 1024)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from kubesft_trainer.checkpoints import CheckpointStore
        from kubesft_api.checkpoints import CheckpointSettings
        from kubesft_trainer.storage.objects import open_store
        settings = CheckpointSettings(uri={store.uri!r}, endpoint_url={moto_s3.endpoint_url!r})
        CheckpointStore(open_store(settings.uri, settings)).upload(Path({str(big)!r}), 20)
        """
    )
    uploader = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **moto_s3.env()})
    try:
        deadline = time.monotonic() + 120
        while not store.store.list_keys("checkpoint-20"):
            assert uploader.poll() is None, "the upload process ended before any file landed"
            assert time.monotonic() < deadline, "no file of checkpoint-20 landed within 120 s"
            time.sleep(0.01)
        uploader.send_signal(signal.SIGKILL)
        uploader.wait(timeout=30)
    finally:
        if uploader.poll() is None:
            uploader.kill()
            uploader.wait()
    landed = store.store.list_keys("checkpoint-20")
    if f"checkpoint-20/{MANIFEST_NAME}" in landed:
        pytest.fail("the upload finished before it could be killed; the test proved nothing")
    assert "checkpoint-20/model.safetensors" not in landed

    latest = store.latest()
    assert latest is not None and latest.step == 10
    found = download_newest_intact(store, tmp_path / "resume", forget_corrupt=True)
    assert found is not None and found[0].step == 10
    assert (found[1] / "trainer_state.json").read_text() == '{"global_step": 10}'

    # The next attempt at the same step clears the leftovers and completes.
    small = fake_checkpoint(tmp_path / "c20-again", 20)
    store.upload(small, 20)
    assert [m.step for m in store.complete()] == [20, 10]
    assert sorted(store.store.list_keys("checkpoint-20")) == sorted(
        [f"checkpoint-20/{p.name}" for p in small.iterdir()] + [f"checkpoint-20/{MANIFEST_NAME}"]
    )


def test_a_corrupt_checkpoint_is_skipped_and_the_next_older_used(
    store: CheckpointStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.upload(fake_checkpoint(tmp_path / "c10", 10), 10)
    store.upload(fake_checkpoint(tmp_path / "c20", 20), 20)
    newest = store.latest()
    assert newest is not None and newest.step == 20
    # Same size, different bytes: only the sha256 can tell.
    size = (tmp_path / "c20" / "optimizer.pt").stat().st_size
    store.store.write_bytes("checkpoint-20/optimizer.pt", os.urandom(size))

    with pytest.raises(
        CorruptCheckpointError, match=r"checkpoint-20: optimizer\.pt does not match its sha256"
    ):
        store.download(newest, tmp_path / "direct")

    with caplog.at_level(logging.WARNING):
        found = download_newest_intact(store, tmp_path / "resume", forget_corrupt=True)
    assert found is not None and found[0].step == 10
    assert f"{store.uri}/checkpoint-20" in caplog.text and "skipping corrupt checkpoint" in caplog.text
    # Forgotten: it no longer counts as complete, so retention cannot keep it over good ones.
    assert [m.step for m in store.complete()] == [10]


def test_a_missing_file_is_reported_as_corrupt(store: CheckpointStore, tmp_path: Path) -> None:
    manifest = store.upload(fake_checkpoint(tmp_path / "c10", 10), 10)
    store.store.delete_key("checkpoint-10/scheduler.pt")
    with pytest.raises(CorruptCheckpointError, match=r"scheduler\.pt is missing"):
        store.download(manifest, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_retention_keeps_exactly_keep_complete_checkpoints(
    store: CheckpointStore, tmp_path: Path, keep: int
) -> None:
    for step in (5, 10, 15, 20):
        store.upload(fake_checkpoint(tmp_path / f"c{step}", step, weights_bytes=1000), step)
    # An abandoned partial upload older than the newest complete one, and one newer (maybe in flight).
    store.store.upload_directory(fake_checkpoint(tmp_path / "c12", 12, weights_bytes=1000), "checkpoint-12")
    store.store.upload_directory(fake_checkpoint(tmp_path / "c25", 25, weights_bytes=1000), "checkpoint-25")

    deleted = store.apply_retention(keep)

    kept = [20, 15, 10, 5][:keep]
    assert [m.step for m in store.complete()] == kept
    assert deleted == sorted({5, 10, 12, 15} - set(kept))
    folders = {key.split("/")[0] for key in store.store.list_keys()}
    assert folders == {f"checkpoint-{step}" for step in [*kept, 25]}


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

    def recorded(directory: Path, step: int) -> object:
        started = time.monotonic()
        try:
            return upload(directory, step)
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
    latest = store.latest()
    assert latest is not None and latest.step == 1
