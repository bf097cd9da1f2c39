"""The checkpoint store the checkpoint tests share (their modules load tests.support.storage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kubesft_trainer.checkpoints import CheckpointStore
from kubesft_trainer.storage.objects import open_store

if TYPE_CHECKING:
    from tests.support.storage import MotoS3


@pytest.fixture
def store(moto_s3: MotoS3, s3_bucket: str) -> CheckpointStore:
    """A CheckpointStore under a fresh bucket of the session's moto server."""
    uri = f"s3://{s3_bucket}/jobs/a/checkpoints"
    return CheckpointStore(open_store(uri, moto_s3.settings(uri)))
