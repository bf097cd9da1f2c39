"""The model card (README.md) written with the trained model."""

from __future__ import annotations

import json

from kubesft_trainer.reporting.summary import TrainingSummary


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _cell(text: str | None, stopped: bool | None = None) -> str:
    """Text for one markdown table cell; an answer cut off by the token limit ends in …."""
    if text is None:
        return "n/a"
    shown = text.replace("|", "\\|").replace("\n", "<br>") or "(nothing)"
    return shown + (" …" if stopped is False else "")


def _samples(summary: TrainingSummary) -> list[str]:
    if not summary.samples:
        return []
    lines = [
        "",
        "## Samples",
        "",
        "Greedy answers to the same prompts before and after training; … marks an answer cut off by "
        "the token limit rather than ended by the model.",
        "",
        "| Prompt | Before | After |",
        "|---|---|---|",
    ]
    for sample in summary.samples:
        lines.append(
            f"| {_cell(sample.prompt)} | {_cell(sample.before, sample.before_stopped)} "
            f"| {_cell(sample.after, sample.after_stopped)} |"
        )
    return lines


def _sources(summary: TrainingSummary) -> list[str]:
    """The mixture's sources with their rows; one source is already named in the data lines."""
    if len(summary.sources) < 2:
        return []
    lines = ["", "| source | revision | format | training rows | evaluation rows |", "|---|---|---|---|---|"]
    for source in summary.sources:
        lines.append(
            f"| `{source.source}` | {source.revision or 'n/a'} | {source.format} | {source.train_rows} "
            f"| {source.eval_rows if source.eval_rows is not None else 'n/a'} |"
        )
    return lines


def render_model_card(summary: TrainingSummary) -> str:
    training = summary.config.get("training", {})
    lora = summary.config.get("lora", {})
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
        "| setting | value |",
        "|---|---|",
    ]
    for key in (
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
    ):
        if key in training:
            lines.append(f"| {key} | {training[key]} |")
    lines.append(f"| precision | {summary.precision} |")
    if summary.weights_dtype:
        lines.append(f"| weights | {summary.weights_dtype} |")
    lines.append(f"| processes | {summary.world_size} |")
    if summary.lora:
        lines.append(
            f"| LoRA | r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
            f"targets={', '.join(lora.get('targetModules', []))}, quantization={lora.get('quantization')} |"
        )
    for key, value in sorted(training.get("extraArgs", {}).items()):
        lines.append(f"| {key} | {value} |")
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
