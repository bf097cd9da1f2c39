"""Complete checkpoints in S3 (moto on loopback): manifests written last, verified downloads, retention."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kubesft_trainer.checkpoints import CheckpointStore, CorruptCheckpointError
from kubesft_trainer.checkpoints.manifest import MANIFEST_NAME, sha256_of
from kubesft_trainer.checkpoints.resume import download_newest_intact
from tests.support.checkpoints import fake_checkpoint

if TYPE_CHECKING:
    from tests.support.storage import MotoS3

pytest_plugins = ("tests.support.storage",)

ROOT = Path(__file__).resolve().parents[3]


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

    assert [m.step for m in store.complete()][:1] == [10]
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


def test_a_checkpoint_deleted_while_it_is_listed_is_not_complete(tmp_path: Path) -> None:
    from kubesft_trainer.storage.local_store import LocalStore

    class DeletedAfterListing(LocalStore):
        """Retention in another process deletes checkpoint-4 right after the listing."""

        def list_keys(self, prefix: str = "") -> list[str]:
            keys = super().list_keys(prefix)
            self.delete_key(f"checkpoint-4/{MANIFEST_NAME}")
            return keys

    root = tmp_path / "ckpt"
    plain = CheckpointStore(LocalStore(str(root), root))
    for step in (4, 8):
        plain.upload(fake_checkpoint(tmp_path / f"c{step}", step), step)
    racing = CheckpointStore(DeletedAfterListing(str(root), root))
    assert [m.step for m in racing.complete()] == [8]


def test_a_manifest_lists_files_other_nodes_uploaded_and_the_upload_keeps_them(
    store: CheckpointStore, tmp_path: Path
) -> None:
    from kubesft_trainer.checkpoints.manifest import ManifestFile

    other_node = tmp_path / "node-1"
    other_node.mkdir()
    (other_node / "rng_state_1.pth").write_bytes(os.urandom(300))
    store.store.upload_file(other_node / "rng_state_1.pth", "checkpoint-4/rng_state_1.pth")
    store.store.write_bytes("checkpoint-4/stale-from-an-earlier-attempt", b"x")
    theirs = ManifestFile(path="rng_state_1.pth", size=300, sha256=sha256_of(other_node / "rng_state_1.pth"))
    manifest = store.upload(fake_checkpoint(tmp_path / "node-0", 4), 4, elsewhere=[theirs])
    assert "rng_state_1.pth" in {item.path for item in manifest.files}
    assert "stale-from-an-earlier-attempt" not in {item.path for item in manifest.files}
    assert not store.store.exists("checkpoint-4/stale-from-an-earlier-attempt")
    local = store.download(store.complete()[0], tmp_path / "downloaded")
    assert (local / "rng_state_1.pth").read_bytes() == (other_node / "rng_state_1.pth").read_bytes()
    assert (local / "model.safetensors").is_file()


def test_each_nodes_files_are_uploaded_once_by_the_lowest_rank_that_has_them() -> None:
    from kubesft_trainer.checkpoints.node_files import upload_assignments

    head = ["a.json", "pytorch_model_fsdp_0/.metadata", "pytorch_model_fsdp_0/__0_0.distcp"]
    node_1 = ["a.json", "pytorch_model_fsdp_0/__1_0.distcp", "pytorch_model_fsdp_0/__2_0.distcp"]
    listed = [head, None, node_1, None, node_1]
    assert upload_assignments(listed) == {
        2: ["pytorch_model_fsdp_0/__1_0.distcp", "pytorch_model_fsdp_0/__2_0.distcp"]
    }
