"""Reading the config file: errors name the file and the spec field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesft_trainer.config.file import load_config
from kubesft_trainer.errors import ConfigError
from tests.support.trainer import trainer_config, write_config


def test_spec_refuses_unknown_and_managed_extra_args_by_name(tmp_path: Path) -> None:
    raw = trainer_config(tmp_path, tmp_path / "d.jsonl", tmp_path / "out")
    raw["training"]["extraArgs"] = {"lerning_rate": 1, "max_steps": 3}
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path / "c.yaml", raw))
    message = str(caught.value)
    assert "spec.training.extraArgs" in message
    assert "'lerning_rate'" in message and "learning_rate" in message
    assert "'max_steps' is set by kubesft; use spec.training.maxSteps" in message


def test_config_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    raw = trainer_config(tmp_path, tmp_path / "d.jsonl", tmp_path / "out", training={"maxSteps": 0})
    with pytest.raises(ConfigError, match=r"spec.training.maxSteps: must be ≥ 1, got 0"):
        load_config(write_config(tmp_path / "c.yaml", raw))
