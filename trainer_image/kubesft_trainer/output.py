"""Writes the final model and its companions locally, then copies them to ``output.uri``.

Layout: the model (or LoRA adapter) with tokenizer, chat template and ``generation_config.json``
at the top, ``merged/`` when the adapter is merged too, ``README.md`` (model card),
``training_summary.json`` and ``loss_curve.png``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesft_api.data_source import HELDOUT
from kubesft_api.times import now_text
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.model.lora import write_merged_model
from kubesft_trainer.reporting.eval_sets import EvalSetResult, results
from kubesft_trainer.reporting.loss_curve import write_loss_curve
from kubesft_trainer.reporting.model_card import render_model_card
from kubesft_trainer.reporting.samples import SampleRun
from kubesft_trainer.reporting.summary import TrainingSummary, first_value, last_value, library_versions

if TYPE_CHECKING:
    from kubesft_trainer.train import PreparedRun

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


def _chat_template_name(config: TrainerConfig) -> str:
    setting = config.model.chat_template
    if setting is None:
        return "model"
    return setting if setting == "chatml" else "inline"


def _final_eval_loss(history: list[dict[str, Any]]) -> float | None:
    """The held-out loss: eval_loss alone, eval_heldout_loss beside dataset.evalSets."""
    single = last_value(history, "eval_loss")
    return single if single is not None else last_value(history, f"eval_{HELDOUT}_loss")


def _eval_sets(run: PreparedRun, history: list[dict[str, Any]]) -> list[EvalSetResult]:
    data = run.data
    if not data.eval_sets:
        return []
    rows = {HELDOUT: len(data.eval)} if data.eval is not None else {}
    rows.update({name: len(dataset) for name, dataset in data.eval_sets.items()})
    guarded = list(data.eval_sets)
    return results(history, rows, guarded, run.config.evaluation.max_retention_loss_increase)


def build_summary(
    run: PreparedRun,
    result: Any,
    started_at: str,
    resumed_from_step: int | None,
    merged: str | None,
    samples: SampleRun,
    warm_started: bool,
) -> TrainingSummary:
    trainer, config = run.trainer, run.config
    history = trainer.state.log_history
    tokens = last_value(history, "num_tokens")
    runtime = result.metrics.get("train_runtime") if result is not None else None
    return TrainingSummary(
        base_model=run.location.description,
        dataset=run.data.description,
        dataset_revision=config.dataset.revision if config.dataset.name else None,
        row_format=run.data.row_format,
        train_rows=len(run.data.train),
        eval_rows=len(run.data.eval) if run.data.eval is not None else None,
        sources=run.data.sources,
        chat_template=_chat_template_name(config),
        end_of_turn_token=run.tokenizer.eos_token,
        global_step=trainer.state.global_step,
        max_steps=trainer.state.max_steps,
        epoch=trainer.state.epoch,
        first_train_loss=first_value(history, "loss"),
        final_train_loss=last_value(history, "loss"),
        mean_train_loss=result.metrics.get("train_loss") if result is not None else None,
        final_eval_loss=_final_eval_loss(history),
        eval_sets=_eval_sets(run, history),
        train_runtime_seconds=runtime,
        tokens=int(tokens) if tokens is not None else None,
        tokens_per_second=tokens / runtime if tokens is not None and runtime else None,
        resumed_from_step=resumed_from_step,
        warm_started_from=config.checkpoints.resume_from if warm_started else None,
        world_size=trainer.args.world_size,
        precision=run.precision,
        weights_dtype=run.weights_dtype,
        lora=config.lora.enabled,
        merged_model_path=merged,
        samples=samples.answers,
        sample_seconds=samples.seconds if samples.answers else None,
        started_at=started_at,
        finished_at=now_text(),
        versions=library_versions(),
        config=config.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def write_outputs(
    run: PreparedRun,
    result: Any,
    started_at: str,
    resumed_from_step: int | None,
    samples: SampleRun,
    warm_started: bool,
    tracked: dict[str, Any] | None = None,
) -> TrainingSummary | None:
    """All ranks take part in saving the model (sharded setups need them); rank 0 answers the
    sample prompts again, writes the rest and returns the summary. Every model form stops at the
    end-of-turn token. ``tracked``: more summary fields (the MLflow run's id and URL, for the model
    card too; the startup phases)."""
    staging = run.env.work_dir / "output"
    if run.env.is_rank_zero:
        shutil.rmtree(staging, ignore_errors=True)
    run.trainer.save_model(str(staging))
    model = run.trainer.model
    if run.sharded:
        # Generating with a sharded model is a collective: every rank answers, rank 0 keeps them.
        samples.answer(model, after=True)
    if not run.env.is_rank_zero:
        return None
    run.stop.write(staging, getattr(model, "generation_config", None))
    if not run.sharded:
        samples.answer(model, after=True)
    merged = None
    if run.config.lora.enabled and run.config.lora.merge_on_finish:
        write_merged_model(staging, staging / MERGED_DIR, run.load_base, run.tokenizer, run.stop)
        merged = MERGED_DIR
    summary = build_summary(run, result, started_at, resumed_from_step, merged, samples, warm_started)
    summary = summary.model_copy(update=tracked or {})
    write_companions(staging, summary, run.trainer.state.log_history)
    upload(staging, run.config)
    return summary
