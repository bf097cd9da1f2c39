"""Several evaluation sets on the tiny model: each set's baseline at step 0 and its final loss, in the
summary, the model card, the progress report and /metrics, and the retention check."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from kubesft_trainer.reporting.failure_report import WARNING_PREFIX
from testing.tinymodel import chat_rows, text_rows, write_jsonl
from tests.support.trainer import run_trainer, summary, trainer_config, write_config

pytestmark = pytest.mark.slow


def far_rows(count: int) -> list[dict[str, str]]:
    """Text nothing like the training conversations: upper-case letters and digits at random."""
    rng = random.Random(3)
    alphabet = "QZXJKVWY0123456789"
    return [{"text": " ".join("".join(rng.choices(alphabet, k=5)) for _ in range(12))} for _ in range(count)]


def _config(model: Path, tmp_path: Path, **evaluation: Any) -> dict[str, Any]:
    chat = write_jsonl(tmp_path / "chat.jsonl", chat_rows(96))
    raw = trainer_config(
        model, chat, tmp_path / "out", training={"maxSteps": 20, "learningRate": 1.0e-2, "evalSteps": 10}
    )
    raw["dataset"].update(
        {
            "evalFraction": 0.1,
            "evalSets": [
                {
                    "setName": "similar",
                    "uri": str(write_jsonl(tmp_path / "similar.jsonl", chat_rows(16, seed=7))),
                },
                {
                    "setName": "general",
                    "uri": str(write_jsonl(tmp_path / "far.jsonl", far_rows(24))),
                    "maxSamples": 16,
                },
            ],
        }
    )
    raw["evaluation"] = {"sampleCount": 0, **evaluation}
    return raw


def test_each_set_is_evaluated_before_the_first_step_and_reported_against_its_baseline(
    model: Path, tmp_path: Path
) -> None:
    raw = _config(model, tmp_path, maxRetentionLossIncrease=0.1)
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    for name, shown in (
        ("heldout", "eval_loss"),
        ("similar", "eval_loss[similar]"),
        ("general", "eval_loss[general]"),
    ):
        assert f"step 0/20 {shown} " in result.stderr, name
        assert f"step 20/20 {shown} " in result.stderr, name
    sets = {item["set"]: item for item in summary(tmp_path / "out")["evalSets"]}
    assert [(name, sets[name]["rows"]) for name in sets] == [
        ("heldout", 10),
        ("similar", 16),
        ("general", 16),
    ]
    for item in sets.values():
        assert item["baselineLoss"] > 0 and item["finalLoss"] > 0
        assert item["change"] == pytest.approx(item["finalLoss"] - item["baselineLoss"])
    assert sets["heldout"]["change"] < 0 and sets["similar"]["change"] < 0, "training data is learned"
    assert sets["general"]["change"] > 0.1 and sets["general"]["regressed"], "far data is forgotten"
    assert not sets["similar"]["regressed"] and sets["similar"]["guardsRetention"]
    assert not sets["heldout"]["guardsRetention"]
    warning = next(line for line in result.stderr.splitlines() if line.startswith(WARNING_PREFIX))
    assert warning.startswith(f"{WARNING_PREFIX}RetentionRegressed: evaluation loss rose over its baseline")
    assert "general " in warning and "similar" not in warning
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| set | rows | before | end | change | retention |" in card
    general = sets["general"]
    assert (
        f"| general | 16 | {general['baselineLoss']:.4f} | {general['finalLoss']:.4f} | {general['change']:+.4f} "
        "| regressed |"
    ) in card


def test_without_a_retention_limit_a_forgetting_run_finishes_without_a_warning(
    model: Path, tmp_path: Path
) -> None:
    raw = _config(model, tmp_path)
    raw["dataset"]["evalSets"] = raw["dataset"]["evalSets"][1:]
    raw["dataset"]["evalSets"][0]["uri"] = str(write_jsonl(tmp_path / "text.jsonl", text_rows(8)))
    raw["training"]["maxSteps"] = 4
    result = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    assert WARNING_PREFIX not in result.stderr
    sets = summary(tmp_path / "out")["evalSets"]
    assert [item["set"] for item in sets] == ["heldout", "general"]
    assert not any(item["guardsRetention"] or item["regressed"] for item in sets)
