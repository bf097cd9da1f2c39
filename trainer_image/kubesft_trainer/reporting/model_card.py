"""The model card (README.md) written with the trained model."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from kubesft_trainer.reporting.summary import TrainingSummary

_SETTINGS = (
    "epochs",
    "maxSteps",
    "learningRate",
    "lrScheduler",
    "warmupRatio",
    "perDeviceBatchSize",
    "gradientAccumulationSteps",
    "maxLength",
    "packing",
    "assistantOnlyLoss",
    "seed",
)
"""The training settings the card lists, in this order, where the spec sets them."""


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _cell(text: str | None, stopped: bool | None = None) -> str:
    """Text for one markdown table cell; an answer cut off by the token limit ends in …."""
    if text is None:
        return "n/a"
    shown = text or "(nothing)"
    return shown + (" …" if stopped is False else "")


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table: the header, its rule, then one line per row."""
    return [_row(columns), "|" + "---|" * len(columns), *(_row(row) for row in rows)]


def _row(cells: Sequence[object]) -> str:
    # Any cell may hold user text (a prompt, a source name), which must not break the table.
    escaped = (str(cell).replace("|", "\\|").replace("\n", "<br>") for cell in cells)
    return "| " + " | ".join(escaped) + " |"


def _section(title: str, intro: str, table: list[str]) -> list[str]:
    return ["", f"## {title}", "", intro, "", *table]


def _samples(summary: TrainingSummary) -> list[str]:
    if not summary.samples:
        return []
    rows = [
        (
            _cell(sample.prompt),
            _cell(sample.before, sample.before_stopped),
            _cell(sample.after, sample.after_stopped),
        )
        for sample in summary.samples
    ]
    return _section(
        "Samples",
        "Greedy answers to the same prompts before and after training; … marks an answer cut off by "
        "the token limit rather than ended by the model.",
        _table(("Prompt", "Before", "After"), rows),
    )


def _sources(summary: TrainingSummary) -> list[str]:
    """The mixture's sources with their rows; one source is already named in the data lines."""
    if len(summary.sources) < 2:
        return []
    columns = ("source", "revision", "format", "training rows", "evaluation rows")
    rows = [
        (
            f"`{source.source}`",
            source.revision or "n/a",
            source.format,
            source.train_rows,
            "n/a" if source.eval_rows is None else source.eval_rows,
        )
        for source in summary.sources
    ]
    return ["", *_table(columns, rows)]


def _eval_sets(summary: TrainingSummary) -> list[str]:
    if not summary.eval_sets:
        return []
    rows = [
        (
            item.set,
            item.rows,
            _loss(item.baseline_loss),
            _loss(item.final_loss),
            "n/a" if item.change is None else f"{item.change:+.4f}",
            "regressed" if item.regressed else ("kept" if item.guards_retention else ""),
        )
        for item in summary.eval_sets
    ]
    return _section(
        "Evaluation sets",
        "The loss of each evaluation set before the first step and at the end; a set that guards "
        "retention (evaluation.maxRetentionLossIncrease) is marked when it rose by more than allowed.",
        _table(("set", "rows", "before", "end", "change", "retention"), rows),
    )


def _settings(summary: TrainingSummary) -> list[tuple[str, object]]:
    training = summary.config.get("training", {})
    rows: list[tuple[str, object]] = [(key, training[key]) for key in _SETTINGS if key in training]
    rows.append(("precision", summary.precision))
    if summary.weights_dtype:
        rows.append(("weights", summary.weights_dtype))
    rows.append(("processes", summary.world_size))
    if summary.lora:
        lora = summary.config.get("lora", {})
        rows.append(
            (
                "LoRA",
                f"r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
                f"targets={', '.join(lora.get('targetModules', []))}, quantization={lora.get('quantization')}",
            )
        )
    return rows + sorted(training.get("extraArgs", {}).items())


def render_model_card(summary: TrainingSummary) -> str:
    tags = ["kubesft", "sft", "trl"] + (["lora"] if summary.lora else [])
    front_matter = {
        "base_model": summary.base_model,
        "library_name": "peft" if summary.lora else "transformers",
        "pipeline_tag": "text-generation",
        "tags": tags,
    }
    lines = ["---"]
    for key, value in front_matter.items():
        lines.append(f"{key}: {json.dumps(value)}")
    lines += [
        "---",
        "",
        f"# Fine-tuned {summary.base_model}",
        "",
        f"Supervised fine-tuning of `{summary.base_model}` on `{summary.dataset}` with TRL's SFTTrainer, "
        "run by kubesft.",
        "",
        "## Data",
        "",
        f"- dataset: `{summary.dataset}` ({summary.row_format} rows)"
        + (f", revision `{summary.dataset_revision}`" if summary.dataset_revision else ""),
        f"- training rows: {summary.train_rows}"
        + (f", evaluation rows: {summary.eval_rows}" if summary.eval_rows is not None else ""),
        f"- chat template: {summary.chat_template}"
        + (f", turns end with `{summary.end_of_turn_token}`" if summary.end_of_turn_token else ""),
        *_sources(summary),
        "",
        "## Settings",
        "",
        *_table(("setting", "value"), _settings(summary)),
    ]
    lines += [
        "",
        "## Results",
        "",
        f"- steps: {summary.global_step} of {summary.max_steps}"
        + (f" (resumed from step {summary.resumed_from_step})" if summary.resumed_from_step else "")
        + (f", warm-started from `{summary.warm_started_from}`" if summary.warm_started_from else ""),
        f"- training loss: {_loss(summary.first_train_loss)} at the first logging step, "
        f"{_loss(summary.final_train_loss)} at the last (mean over the run: {_loss(summary.mean_train_loss)})",
        f"- final evaluation loss: {_loss(summary.final_eval_loss)}",
    ]
    if summary.tokens is not None:
        lines.append(f"- tokens trained on: {summary.tokens:,}")
    if summary.mlflow_run_id:
        lines.append(f"- MLflow run: [{summary.mlflow_run_id}]({summary.mlflow_run_url})")
    lines += _eval_sets(summary)
    lines += _samples(summary)
    lines += [
        "",
        "![loss curve](loss_curve.png)",
        "",
        "## Files",
        "",
    ]
    if summary.lora:
        lines.append(
            "- the LoRA adapter (`adapter_config.json`, `adapter_model.safetensors`) with its tokenizer"
        )
        if summary.merged_model_path:
            lines.append(f"- `{summary.merged_model_path}/`: the adapter merged into the base weights")
    else:
        lines.append("- the model weights and config with its tokenizer and chat template")
    lines.append("- `generation_config.json`: generation stops at the end-of-turn token")
    lines += [
        "- `training_summary.json`: these facts, the full config and the library versions",
        "- `loss_curve.png`: loss against step",
        "",
        "Library versions: " + ", ".join(f"{name} {version}" for name, version in summary.versions.items()),
        "",
    ]
    return "\n".join(lines)
