"""Reads the trainer config file the operator mounts (or one given with --config)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from kubesft_api.trainer_config import TrainerConfig
from kubesft_api.validation import describe_validation_error
from kubesft_trainer.errors import ConfigError


def load_config(path: Path) -> TrainerConfig:
    """Parse and validate; every problem is named by its spec field, e.g. ``spec.training.maxSteps``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping (model, dataset, training, …)")
    try:
        return TrainerConfig.model_validate(raw)
    except ValidationError as error:
        problems = describe_validation_error(error, root="spec")
        raise ConfigError(f"invalid config {path}: " + "; ".join(problems)) from error
