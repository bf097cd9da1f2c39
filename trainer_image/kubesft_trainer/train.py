"""One training run from a TrainerConfig: model, data, SFTTrainer, checkpoints, telemetry and outputs.

Every process of a distributed run executes this; rank 0 alone serves metrics and writes outputs.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kubesft_api import exit_codes
from kubesft_api.times import now_text
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.config.sft_args import build_sft_config, installed_sft_fields, sft_kwargs
from kubesft_trainer.config.tuning import Accelerator, attention_implementation, tuned_sft_defaults
from kubesft_trainer.data.example_view import describe_example
from kubesft_trainer.data.loading import PreparedData, load_data
from kubesft_trainer.errors import ConfigError, DataError
from kubesft_trainer.model.loading import (
    ModelLocation,
    TokenizerSetup,
    load_model,
    load_tokenizer,
    locate_model,
    prepare_tokenizer,
)
from kubesft_trainer.model.lora import (
    check_quantization,
    peft_config,
    quantization_config,
    write_merged_model,
)
from kubesft_trainer.model.templates import check_template_fits_data
from kubesft_trainer.output import MERGED_DIR, upload, write_companions
from kubesft_trainer.reporting import metrics
from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from kubesft_trainer.reporting.status_server import StatusServer
from kubesft_trainer.reporting.summary import TrainingSummary, first_value, last_value, library_versions

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
    from trl import SFTTrainer

log = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """Everything built before the first step; ``--validate`` stops here."""

    config: TrainerConfig
    env: RuntimeEnv
    location: ModelLocation
    tokenizer: PreTrainedTokenizerBase
    setup: TokenizerSetup
    data: PreparedData
    trainer: SFTTrainer

    def load_base(self) -> PreTrainedModel:
        """The base model again, unquantized, e.g. to merge the adapter into."""
        return load_model(self.config.model, self.location, self.tokenizer)


def _has_eval(config: TrainerConfig) -> bool:
    return config.dataset.eval_split is not None or config.dataset.eval_fraction is not None


def _local_main_first() -> AbstractContextManager[Any]:
    """Downloads happen once per node: local rank 0 first, the others then find them cached."""
    from accelerate import PartialState

    return cast(AbstractContextManager[Any], PartialState().local_main_process_first())


def _quiet_trainer_printing(trainer: SFTTrainer, progress_bar: bool) -> None:
    """Our telemetry callback writes the per-step line; drop transformers' raw dict printing."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            return None

    trainer.remove_callback(PrinterCallback)
    if progress_bar:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())


def _sft_trainer(**kwargs: Any) -> SFTTrainer:
    from trl import SFTTrainer

    try:
        return SFTTrainer(**kwargs)
    except ValueError as error:
        raise ConfigError(f"training: TRL refused the settings: {error}") from error
    except RuntimeError as error:
        if "assistant" in str(error):
            raise DataError(f"dataset: {error}") from error
        raise


def prepare(
    config: TrainerConfig,
    env: RuntimeEnv,
    output_dir: Path,
    callbacks: list[TrainerCallback],
    progress_bar: bool,
) -> PreparedRun:
    """Check the config, load data and model, and build the SFTTrainer; cheap checks come first."""
    accelerator = Accelerator.detect()
    check_quantization(config.lora, accelerator.cuda)
    kwargs = sft_kwargs(
        config,
        output_dir=output_dir,
        has_eval=_has_eval(config),
        progress_bar=progress_bar,
        installed=installed_sft_fields(),
        cuda=accelerator.cuda,
        bf16_capable=accelerator.bf16_capable,
        tuned=tuned_sft_defaults(accelerator),
    )
    sft_config = build_sft_config(kwargs)
    cache = env.work_dir / "cache"
    with _local_main_first():
        location = locate_model(config.model, config.checkpoints, cache, env.hf_token)
        tokenizer = load_tokenizer(config.model, location)
        setup = prepare_tokenizer(tokenizer, config.model)
        data = load_data(
            config.dataset,
            config.training.assistant_only_loss,
            config.checkpoints,
            cache,
            env.hf_token,
        )
    check_template_fits_data(tokenizer, data.conversational, config.training.assistant_only_loss)
    if data.conversational and setup.eos_token is not None and "eos_token" not in config.training.extra_args:
        sft_config.eos_token = setup.eos_token
    with _local_main_first():
        model = load_model(
            config.model,
            location,
            tokenizer,
            quantization_config(config.lora),
            attention_implementation(accelerator, config.training.packing),
        )
    vocab = tokenizer.get_vocab()
    added_ids = [vocab[token] for token in setup.added_tokens]
    trainer = _sft_trainer(
        model=model,
        args=sft_config,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        peft_config=peft_config(config.lora, added_ids),
        callbacks=callbacks,
    )
    _quiet_trainer_printing(trainer, progress_bar)
    return PreparedRun(config, env, location, tokenizer, setup, data, trainer)


def validate(config: TrainerConfig, env: RuntimeEnv) -> str:
    """Everything but training: returns the first example as the model sees it, loss spans marked."""
    with tempfile.TemporaryDirectory(prefix="kubesft-validate-") as scratch:
        run = prepare(config, env, Path(scratch), callbacks=[], progress_bar=False)
        example = run.trainer.train_dataset[0]
        lines = [
            f"config: ok; model: {run.location.description}; data: {len(run.data.train)} training rows"
            + (f", {len(run.data.eval)} evaluation rows" if run.data.eval is not None else "")
            + f" ({run.data.row_format})",
            *[f"note: {note}" for note in run.setup.notes],
            describe_example(run.tokenizer, example["input_ids"], example["labels"]),
        ]
        return "\n".join(lines)


def _chat_template_name(config: TrainerConfig) -> str:
    setting = config.model.chat_template
    if setting is None:
        return "model"
    return setting if setting == "chatml" else "inline"


def _precision(trainer: SFTTrainer) -> str:
    return "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"


def _summary(
    run: PreparedRun, result: Any, started_at: str, resumed_from_step: int | None, merged: str | None
) -> TrainingSummary:
    trainer, config = run.trainer, run.config
    history = trainer.state.log_history
    tokens = last_value(history, "num_tokens")
    runtime = result.metrics.get("train_runtime") if result is not None else None
    return TrainingSummary(
        base_model=run.location.description,
        dataset=run.data.description,
        row_format=run.data.row_format,
        train_rows=len(run.data.train),
        eval_rows=len(run.data.eval) if run.data.eval is not None else None,
        chat_template=_chat_template_name(config),
        global_step=trainer.state.global_step,
        max_steps=trainer.state.max_steps,
        epoch=trainer.state.epoch,
        first_train_loss=first_value(history, "loss"),
        final_train_loss=last_value(history, "loss"),
        mean_train_loss=result.metrics.get("train_loss") if result is not None else None,
        final_eval_loss=last_value(history, "eval_loss"),
        train_runtime_seconds=runtime,
        tokens=int(tokens) if tokens is not None else None,
        tokens_per_second=tokens / runtime if tokens is not None and runtime else None,
        resumed_from_step=resumed_from_step,
        world_size=trainer.args.world_size,
        precision=_precision(trainer),
        lora=config.lora.enabled,
        merged_model_path=merged,
        started_at=started_at,
        finished_at=now_text(),
        versions=library_versions(),
        config=config.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def _write_outputs(run: PreparedRun, result: Any, started_at: str, resumed_from_step: int | None) -> None:
    """All ranks take part in saving the model (sharded setups need them); rank 0 writes the rest."""
    staging = run.env.work_dir / "output"
    if run.env.is_rank_zero:
        shutil.rmtree(staging, ignore_errors=True)
    run.trainer.save_model(str(staging))
    if not run.env.is_rank_zero:
        return
    merged = None
    if run.config.lora.enabled and run.config.lora.merge_on_finish:
        write_merged_model(staging, staging / MERGED_DIR, run.load_base, run.tokenizer)
        merged = MERGED_DIR
    summary = _summary(run, result, started_at, resumed_from_step, merged)
    write_companions(staging, summary, run.trainer.state.log_history)
    upload(staging, run.config)


def _gpu_memory() -> Any:
    import torch

    if not torch.cuda.is_available():
        return None
    return lambda: int(torch.cuda.memory_allocated())


def _progress_bar_context(progress_bar: bool) -> AbstractContextManager[Any]:
    if not progress_bar:
        return nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm  # type: ignore[import-untyped]

    return cast(AbstractContextManager[Any], logging_redirect_tqdm())


def train(config: TrainerConfig, env: RuntimeEnv) -> tuple[int, str | None]:
    """Train to the end (exit 0) or until SIGTERM, after saving a checkpoint (exit 75)."""
    from kubesft_trainer.checkpoints import CheckpointManager
    from kubesft_trainer.reporting.telemetry import TelemetryCallback

    started_at = now_text()
    progress_bar = env.is_rank_zero and sys.stderr.isatty()
    tracker = ProgressTracker()
    server = StatusServer(env.metrics_port, tracker.report).start() if env.is_rank_zero else None
    try:
        metrics.TRAIN_INFO.info(
            {
                "model": config.model.name or config.model.uri or "",
                "dataset": config.dataset.name or config.dataset.uri or "",
            }
        )
        manager = CheckpointManager.from_config(config.checkpoints, env)
        tracker.add_source(manager.progress_fields)
        callbacks = list(manager.callbacks())
        if env.is_rank_zero:
            callbacks.append(TelemetryCallback(tracker, gpu_memory=_gpu_memory()))
        run = prepare(config, env, env.work_dir / "checkpoints", callbacks, progress_bar)
        resume = manager.prepare_resume()
        log.info(
            "training %s on %s%s",
            run.location.description,
            run.data.description,
            f", resuming from {resume}" if resume else "",
        )
        with _progress_bar_context(progress_bar):
            result = run.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if manager.preempted:
            manager.finish(timeout=env.grace_seconds)
            step = run.trainer.state.global_step
            return (
                exit_codes.PREEMPTED,
                f"preempted at step {step}; the checkpoint is saved and the job resumes from it",
            )
        resumed_from_step = manager.progress_fields().get("resumed_from_step")
        _write_outputs(run, result, started_at, resumed_from_step)
        manager.finish(timeout=None)
        return exit_codes.SUCCESS, None
    finally:
        if server is not None:
            server.stop()
