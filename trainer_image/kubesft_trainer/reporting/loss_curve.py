"""The loss-curve PNG written next to the trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loss_points(log_history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` (``loss`` or ``eval_loss``) in a Trainer's log history."""
    steps, values = [], []
    for entry in log_history:
        if key in entry and "step" in entry:
            steps.append(int(entry["step"]))
            values.append(float(entry[key]))
    return steps, values


def write_loss_curve(log_history: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Plot training (and evaluation) loss against the step; False when nothing was logged."""
    train = loss_points(log_history, "loss")
    evaluation = loss_points(log_history, "eval_loss")
    if not train[0] and not evaluation[0]:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    if train[0]:
        axes.plot(*train, label="training loss", color="tab:blue")
    if evaluation[0]:
        axes.plot(*evaluation, label="evaluation loss", color="tab:orange", marker="o")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
