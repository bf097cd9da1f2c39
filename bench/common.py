"""What the CPU benchmarks share: the tiny run they train, the trainer run as a pod runs it, and
where their figures go (``bench/out/<name>.json``, with the machine they were measured on)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(model: Path, data: Path, output: Path, steps: int, **training: Any) -> dict[str, Any]:
    """The trainer config of the benchmarks' tiny run (ChatML, batch 8, max length 256, lr 1e-3);
    ``training`` adds or replaces training fields."""
    return {
        "model": {"uri": str(model), "chatTemplate": "chatml"},
        "dataset": {"uri": str(data)},
        "training": {
            "maxSteps": steps,
            "perDeviceBatchSize": 8,
            "learningRate": 1.0e-3,
            "maxLength": 256,
            "gradientCheckpointing": False,
            "loggingSteps": 10,
            **training,
        },
        "output": {"uri": str(output)},
    }


def training_env(work: Path) -> dict[str, str]:
    """The environment of a training process: none of this shell's KUBESFT_*, the Hub offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBESFT_")}
    env.update({"KUBESFT_WORK_DIR": str(work), "KUBESFT_METRICS_PORT": "0", "HF_HUB_OFFLINE": "1"})
    return env


def run_trainer(config: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """``python -m kubesft_trainer`` on ``config`` in a process of its own, as in a pod (no
    KUBESFT_* from this shell, Hub offline); returns its ``training_summary.json``."""
    path = scratch / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    subprocess.run(
        [sys.executable, "-m", "kubesft_trainer", "--config", str(path)],
        env=training_env(scratch / "work"),
        check=True,
        capture_output=True,
    )
    summary: dict[str, Any] = json.loads(
        (Path(config["output"]["uri"]) / "training_summary.json").read_text()
    )
    return summary


def median(rounds: list[dict[str, Any]], key: str) -> float:
    """The median over the rounds of one figure."""
    return statistics.median(float(figures[key]) for figures in rounds)


def pair_differences(first: list[float], second: list[float]) -> list[float]:
    """Each pair's second measurement less its first, for arms measured in alternating pairs."""
    return [b - a for a, b in zip(first, second, strict=True)]


def write_figures(name: str, figures: dict[str, Any], *, merge: bool = False) -> Path:
    """``bench/out/<name>.json`` with the machine added; ``merge`` keeps the figures of an earlier
    run that this one did not measure."""
    out = ROOT / "bench" / "out" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if merge and out.exists():
        figures = {**json.loads(out.read_text()), **figures}
    figures = {**figures, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return out
