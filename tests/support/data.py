"""Training data loaded the way the trainer loads it, for the data tests."""

from __future__ import annotations

from pathlib import Path

from kubesft_api.checkpoints import CheckpointSettings
from kubesft_api.dataset import DatasetSource
from kubesft_trainer.data.loading import PreparedData, load_data

SETTINGS = CheckpointSettings()


def load(tmp_path: Path, assistant_only: bool = False, **source: object) -> PreparedData:
    """``load_data`` of a source given as spec fields (``uri=...``), cached under ``tmp_path``."""
    return load_data(DatasetSource(**source), assistant_only, SETTINGS, tmp_path / "cache", hf_token=None)
