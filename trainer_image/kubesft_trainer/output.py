"""Writes the final model and its companions locally, then copies them to ``output.uri``.

Layout: the model (or LoRA adapter) with tokenizer and chat template at the top, ``merged/``
when the adapter is merged too, ``README.md`` (model card), ``training_summary.json`` and
``loss_curve.png``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.reporting.loss_curve import write_loss_curve
from kubesft_trainer.reporting.model_card import render_model_card
from kubesft_trainer.reporting.summary import TrainingSummary

log = logging.getLogger(__name__)

SUMMARY_FILE = "training_summary.json"
LOSS_CURVE_FILE = "loss_curve.png"
MODEL_CARD_FILE = "README.md"
MERGED_DIR = "merged"


def write_companions(staging: Path, summary: TrainingSummary, log_history: list[dict[str, object]]) -> None:
    """Model card, summary and loss curve next to the saved model."""
    (staging / SUMMARY_FILE).write_text(summary.model_dump_json(by_alias=True, indent=2) + "\n")
    (staging / MODEL_CARD_FILE).write_text(render_model_card(summary))
    write_loss_curve(log_history, staging / LOSS_CURVE_FILE, f"{summary.base_model} on {summary.dataset}")


def upload(staging: Path, config: TrainerConfig) -> int:
    """Copy the staged outputs to ``output.uri``; returns the bytes written."""
    from kubesft_trainer.storage.objects import open_store

    assert config.output.uri is not None
    started = time.monotonic()
    written: int = open_store(config.output.uri, config.checkpoints).upload_directory(staging, "")
    log.info(
        "wrote the model to %s (%.1f MB in %.1f s)",
        config.output.uri,
        written / 1e6,
        time.monotonic() - started,
    )
    return written
