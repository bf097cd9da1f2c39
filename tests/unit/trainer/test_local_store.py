"""The local-folder store: a failed write leaves nothing under the final name."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_trainer.storage.objects import StorageError, open_store


def test_local_store_leaves_no_partial_file_under_the_final_name(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "root"), CheckpointSettings())
    with pytest.raises(StorageError, match="writing"):
        store.upload_file(tmp_path / "missing-source", "a/b.bin")
    assert store.list_keys() == []
