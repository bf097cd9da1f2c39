"""Evaluation losses by set: read from the Trainer's logs, against each set's baseline at step 0,
and the retention check of evaluation.maxRetentionLossIncrease."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from kubesft_api.data_source import HELDOUT
from kubesft_api.pod_contract import RETENTION_REGRESSED

__all__ = ["RETENTION_REGRESSED"]

_SET_LOSS = re.compile(r"^eval_(?P<set>[a-z0-9][-_a-z0-9]*)_loss$")


def set_losses(logs: dict[str, Any]) -> dict[str, float]:
    """``{set: loss}`` in one log entry: ``eval_loss`` is the held-out set's, ``eval_<set>_loss``
    another set's (transformers names the losses of a dict of evaluation datasets so)."""
    found: dict[str, float] = {}
    for key, value in logs.items():
        if not isinstance(value, int | float):
            continue
        if key == "eval_loss":
            found[HELDOUT] = float(value)
        elif (match := _SET_LOSS.match(key)) is not None:
            found[match["set"]] = float(value)
    return found


def baselines(log_history: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Each set's loss at step 0, the evaluation before the first step."""
    found: dict[str, float] = {}
    for entry in log_history:
        if entry.get("step") == 0:
            for name, loss in set_losses(entry).items():
                found.setdefault(name, loss)
    return found


def latest(log_history: Iterable[dict[str, Any]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for entry in log_history:
        found.update(set_losses(entry))
    return found


def regressed(
    baseline: dict[str, float], current: dict[str, float], guarded: Iterable[str], limit: float | None
) -> list[str]:
    """The guarded sets whose loss rose over their baseline by more than ``limit``."""
    if limit is None:
        return []
    return [
        name
        for name in guarded
        if name in baseline and name in current and current[name] - baseline[name] > limit
    ]


class EvalSetResult(BaseModel):
    """One evaluation set in the summary and the model card."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    set: str
    rows: int
    baseline_loss: float | None = None
    final_loss: float | None = None
    change: float | None = None
    guards_retention: bool = False
    regressed: bool = False


def results(
    log_history: list[dict[str, Any]], rows: dict[str, int], guarded: list[str], limit: float | None
) -> list[EvalSetResult]:
    before, after = baselines(log_history), latest(log_history)
    worse = set(regressed(before, after, guarded, limit))
    out = []
    for name, count in rows.items():
        first, last = before.get(name), after.get(name)
        out.append(
            EvalSetResult(
                set=name,
                rows=count,
                baseline_loss=first,
                final_loss=last,
                change=last - first if first is not None and last is not None else None,
                guards_retention=name in guarded and limit is not None,
                regressed=name in worse,
            )
        )
    return out


def retention_message(items: list[EvalSetResult], limit: float) -> str:
    """What the RetentionRegressed warning says."""
    parts = [
        f"{item.set} {item.baseline_loss:.4f} -> {item.final_loss:.4f} (+{item.change:.4f})"
        for item in items
        if item.regressed
        and item.baseline_loss is not None
        and item.final_loss is not None
        and item.change is not None
    ]
    return (
        f"evaluation loss rose over its baseline by more than evaluation.maxRetentionLossIncrease ({limit:g}): "
        + ", ".join(parts)
        + "; the model forgot what these sets measure: lower the learning rate or the number of steps, "
        "use LoRA, or mix general data into the training data (dataset.mixture)"
    )
