"""Helpers for the trainer tests: configs, and the CLI run as a pod runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kubesft_api.trainer_config import TrainerConfig

ROOT = Path(__file__).resolve().parents[2]


def trainer_config(model: Path, data: Path, output: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast config: a few steps of a tiny model; ``sections`` override by section."""
    config: dict[str, Any] = {
        "model": {"uri": str(model), "chatTemplate": "chatml"},
        "dataset": {"uri": str(data)},
        "training": {
            "maxSteps": 12,
            "perDeviceBatchSize": 8,
            "learningRate": 1.0e-3,
            "maxLength": 128,
            "loggingSteps": 4,
            "gradientCheckpointing": False,
        },
        "checkpoints": {"saveSteps": 1000},
        "output": {"uri": str(output)},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def parsed_config(**training: object) -> TrainerConfig:
    """``trainer_config`` with ``training`` overrides, parsed as the trainer parses it; the paths need
    not exist."""
    raw = trainer_config(Path("/m"), Path("/d.jsonl"), Path("/out"), training=dict(training))
    return TrainerConfig.model_validate(raw)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def trainer_env(work_dir: Path, **extra: str) -> dict[str, str]:
    """The environment the operator gives a trainer pod, for a local run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBESFT_", "TORCHELASTIC_"))}
    env.update(
        {
            "KUBESFT_WORK_DIR": str(work_dir),
            "KUBESFT_METRICS_PORT": "0",
            "KUBESFT_GRACE_SECONDS": "30",
            "HF_HOME": str(work_dir / "hf"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def trainer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubesft_trainer", *args]


def run_trainer(
    config: Path, work_dir: Path, *args: str, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m kubesft_trainer --config FILE`` as a subprocess, as the pod's command runs it."""
    return subprocess.run(
        trainer_command("--config", str(config), *args),
        env=trainer_env(work_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


_HUB_STAND_IN = """
import json, sys, datasets
real, served = datasets.load_dataset, json.loads(sys.argv[1])
def load_dataset(path, name=None, split=None, revision=None, token=None, **options):
    rows = served.get(f"{path}@{revision}")
    if rows is None or split != "train":
        return real(path, name, split=split, revision=revision, token=token, **options)
    return real("json", data_files=rows, split="train")
datasets.load_dataset = load_dataset
from kubesft_trainer.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def run_trainer_with_hub_datasets(
    config: Path, work_dir: Path, datasets: dict[str, Path], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``run_trainer`` with Hub datasets served from local files: ``{"owner/name@revision": rows.jsonl}``
    stands in for the Hub's train split of that revision (offline, the Hub cannot be reached)."""
    served = json.dumps({key: str(path) for key, path in datasets.items()})
    return subprocess.run(
        [sys.executable, "-c", _HUB_STAND_IN, served, "--config", str(config), *args],
        env=trainer_env(work_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def last_stderr_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def summary(output: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((output / "training_summary.json").read_text())
    return data
