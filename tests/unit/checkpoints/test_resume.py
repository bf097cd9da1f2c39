"""Choosing the checkpoint to resume from: the newest intact one; a corrupt one is skipped and forgotten."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kubesft_trainer.checkpoints import CheckpointStore, CorruptCheckpointError
from kubesft_trainer.checkpoints.resume import download_newest_intact
from tests.support.checkpoints import fake_checkpoint

pytest_plugins = ("tests.support.storage",)


def test_a_corrupt_checkpoint_is_skipped_and_the_next_older_used(
    store: CheckpointStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.upload(fake_checkpoint(tmp_path / "c10", 10), 10)
    store.upload(fake_checkpoint(tmp_path / "c20", 20), 20)
    newest, _ = store.complete()
    assert newest.step == 20
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
