"""One training run from a TrainerConfig: model, data, SFTTrainer, checkpoints, telemetry and outputs.

Every process of a distributed run executes this; rank 0 alone serves metrics and writes outputs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from kubesft_api import exit_codes
from kubesft_api.progress import Stage
from kubesft_api.times import now_text
from kubesft_api.trainer_config import COMPLETION_ONLY_ON_MESSAGES, TrainerConfig
from kubesft_trainer.checkpoints import CheckpointManager
from kubesft_trainer.config.precision import (
    Precision,
    precision_warning,
    pure_low_precision_warning,
    resolved_precision,
    weights_dtype,
)
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.config.sft_args import build_sft_config, installed_sft_fields, sft_kwargs
from kubesft_trainer.config.sharding import (
    block_class_name,
    check_sharded_attention,
    check_sharding_device,
    fsdp_sft_kwargs,
    sharded,
)
from kubesft_trainer.config.tuning import Accelerator, attention_implementation, tuned_sft_defaults
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
from kubesft_trainer.model.lora import check_quantization, peft_config, quantization_config
from kubesft_trainer.model.stop_tokens import StopTokens
from kubesft_trainer.model.templates import check_template_fits_data
from kubesft_trainer.output import write_outputs
from kubesft_trainer.reporting import metrics
from kubesft_trainer.reporting.eval_sets import RETENTION_REGRESSED, retention_message
from kubesft_trainer.reporting.failure_report import WARNING_PREFIX, report_failure
from kubesft_trainer.reporting.memory import memory_estimate
from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from kubesft_trainer.reporting.samples import BEFORE_FILE, SampleRun, choose_prompts
from kubesft_trainer.reporting.startup import StartupPhaseName, StartupTimeline, rfc3339_millis
from kubesft_trainer.reporting.status_server import StatusServer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
    from trl import SFTTrainer

log = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """Everything built before the first step."""

    config: TrainerConfig
    env: RuntimeEnv
    location: ModelLocation
    tokenizer: PreTrainedTokenizerBase
    setup: TokenizerSetup
    data: PreparedData
    trainer: SFTTrainer
    precision: Precision
    weights_dtype: str
    stop: StopTokens
    sharded: bool = False
    parameters: int | None = None
    """Parameters counted on the loaded model (None for a quantized one, whose storage is packed)."""

    def load_base(self) -> PreTrainedModel:
        """The base model again, unquantized, in its own dtype (or model.dtype), to merge the adapter into."""
        return load_model(self.config.model, self.location, self.tokenizer, self.config.model.dtype)

    def samples(self) -> SampleRun:
        """Answers to the sample prompts, with this run's chat template, stop tokens and autocast."""
        settings = self.config.evaluation
        prompts = choose_prompts(
            settings, self.data.train, self.data.eval, bool(self.tokenizer.chat_template)
        )
        autocast = self.trainer.accelerator.autocast
        return SampleRun(
            prompts, self.tokenizer, self.stop, settings.sample_max_new_tokens, autocast, self.sharded
        )


def _has_eval(config: TrainerConfig) -> bool:
    dataset = config.dataset
    return dataset.eval_split is not None or dataset.eval_fraction is not None or bool(dataset.eval_sets)


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
    from kubesft_trainer.sharded_trainer import KubesftSFTTrainer

    try:
        return KubesftSFTTrainer(**kwargs)
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
    stage: Callable[[Stage], None] = lambda _: None,
    phase: Callable[[StartupPhaseName], None] = lambda _: None,
) -> PreparedRun:
    """Check the config, load data and model, and build the SFTTrainer; cheap checks come first.
    ``stage`` hears what it does next, for /progress; ``phase`` too, for the startup timeline."""
    accelerator = Accelerator.detect()
    check_quantization(config.lora, accelerator.cuda)
    precision = resolved_precision(config.training.precision, accelerator.cuda, accelerator.capability)
    dtype = weights_dtype(config.model, config.lora, precision)
    for warning in (
        precision_warning(config.training.precision, accelerator.cuda, accelerator.capability),
        pure_low_precision_warning(config.model, config.lora),
    ):
        if warning:
            log.warning("%s", warning)
    shard = sharded(config.training, env.world_size, env.nnodes * env.nproc_per_node)
    if shard:
        check_sharding_device(config.training, accelerator.cuda)
    kwargs = sft_kwargs(
        config,
        output_dir=output_dir,
        has_eval=_has_eval(config),
        progress_bar=progress_bar,
        installed=installed_sft_fields(),
        cuda=accelerator.cuda,
        precision=precision,
        tuned=tuned_sft_defaults(accelerator),
        sharding=fsdp_sft_kwargs(config.training, env.nnodes, env.nproc_per_node) if shard else None,
    )
    sft_config = build_sft_config(kwargs)
    cache = env.work_dir / "cache"
    with _local_main_first():
        stage("DownloadingModel")
        phase("modelFiles")
        location = locate_model(config.model, config.checkpoints, cache, env.hf_token)
        tokenizer = load_tokenizer(config.model, location)
        setup = prepare_tokenizer(tokenizer, config.model)
        stage("DownloadingData")
        phase("data")
        data = load_data(
            config.dataset,
            config.training.assistant_only_loss,
            config.checkpoints,
            cache,
            env.hf_token,
        )
    if config.training.completion_only_loss and data.row_format == "messages":
        raise ConfigError(f"training.completionOnlyLoss: {COMPLETION_ONLY_ON_MESSAGES}")
    check_template_fits_data(tokenizer, data.conversational, config.training.assistant_only_loss)
    if data.conversational and setup.eos_token is not None and "eos_token" not in config.training.extra_args:
        sft_config.eos_token = setup.eos_token
    attention = attention_implementation(accelerator, config.training.packing)
    if shard:
        check_sharded_attention(config.training, attention)
    phase("modelLoad")
    with _local_main_first():
        model = load_model(
            config.model,
            location,
            tokenizer,
            dtype,
            quantization_config(config.lora, precision),
            attention,
        )
    log.info("weights in %s, training precision %s", dtype, precision)
    parameters = None if config.lora.quantization != "none" else sum(p.numel() for p in model.parameters())
    vocab = tokenizer.get_vocab()
    added_ids = [vocab[token] for token in setup.added_tokens]
    stage("Tokenizing")
    phase("tokenizing")
    trainer = _sft_trainer(
        model=model,
        args=sft_config,
        train_dataset=data.train,
        eval_dataset=data.eval_datasets,
        processing_class=tokenizer,
        peft_config=peft_config(config.lora, added_ids),
        callbacks=callbacks,
        wrap_class=block_class_name(model) if shard else None,
        precision=precision,
    )
    _quiet_trainer_printing(trainer, progress_bar)
    # After the trainer: TRL makes the template's end of turn the tokenizer's EOS.
    stop = StopTokens.of(tokenizer, setup.eos_token, getattr(model, "generation_config", None))
    return PreparedRun(
        config, env, location, tokenizer, setup, data, trainer, precision, dtype, stop, shard, parameters
    )


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


def train(
    config: TrainerConfig,
    env: RuntimeEnv,
    process_started: float | None = None,
    manager: CheckpointManager | None = None,
) -> tuple[int, str | None]:
    """Train to the end (exit 0) or until SIGTERM, after saving a checkpoint (exit 75).
    ``process_started``: when the process started, for the startup timeline's first phase.
    ``manager``: the run's checkpoints, made earlier to start the resume's download sooner."""
    from kubesft_trainer.checkpoints.warm_start import load_warm_start
    from kubesft_trainer.reporting.mlflow_run import MlflowCallback, open_mlflow_run
    from kubesft_trainer.reporting.telemetry import TelemetryCallback

    started_at = now_text()
    startup = StartupTimeline(process_started)
    startup.begin("setup")
    progress_bar = env.is_rank_zero and sys.stderr.isatty()
    tracker = ProgressTracker()
    server = StatusServer(env.metrics_port, tracker.report).start() if env.is_rank_zero else None
    mlflow_run = None
    try:
        metrics.TRAIN_INFO.info(
            {
                "model": config.model.name or config.model.uri or "",
                "dataset": ", ".join(source.label for source in config.dataset.sources),
            }
        )
        if manager is None:
            manager = CheckpointManager.from_config(config, env)
        # Beside the imports, the model and the data, so a resume waits only for what is left of it.
        manager.start_resume()
        tracker.add_source(manager.progress_fields)
        callbacks = list(manager.callbacks())
        if env.is_rank_zero:
            callbacks.append(
                TelemetryCallback(
                    tracker,
                    gpu_memory=_gpu_memory(),
                    guarded=tuple(entry.set_name for entry in config.dataset.eval_sets),
                    retention_limit=config.evaluation.max_retention_loss_increase,
                    startup=startup,
                )
            )
        mlflow_run = open_mlflow_run(config, env)
        if mlflow_run is not None:
            tracker.add_source(mlflow_run.progress_fields)
            callbacks.append(MlflowCallback(mlflow_run, config.model_dump(mode="json", by_alias=True)))
        run = prepare(
            config,
            env,
            env.work_dir / "checkpoints",
            callbacks,
            progress_bar,
            stage=lambda stage: tracker.update(stage=stage),
            phase=startup.begin,
        )
        estimate = memory_estimate(run) if env.is_rank_zero else None
        if estimate is not None:
            for line in estimate.lines()[:2]:
                log.info("%s", line.strip())
            if estimate.warning:
                log.warning("%s", estimate.warning)
        startup.begin("checkpointDownload")
        resume = manager.prepare_resume()
        startup.begin("samples")
        samples = run.samples()
        if env.is_rank_zero and samples.prompts:
            if resume is None or not samples.take_before(resume):
                samples.answer(run.trainer.model, after=False)
            manager.carry(BEFORE_FILE, samples.before_record())
        if resume is None and config.checkpoints.resume_from is not None:
            startup.begin("warmStart")
        warm = manager.prepare_warm_start() if resume is None else None
        if warm is not None:
            assert config.checkpoints.resume_from is not None
            load_warm_start(run.trainer.model, warm, config.checkpoints.resume_from, config.lora.enabled)
        log.info(
            "training %s on %s%s",
            run.location.description,
            run.data.description,
            f", resuming from {resume}" if resume else "",
        )
        startup.begin("checkpointRestore" if resume else "trainerStart")
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
        tracker.update(stage="UploadingOutput")
        downloaded = manager.download_finished_at
        tracked = {
            **(mlflow_run.progress_fields() if mlflow_run is not None else {}),
            "startup": startup.phases(),
            "checkpoint_download_seconds": manager.download_seconds,
            "checkpoint_download_finished_at": rfc3339_millis(downloaded) if downloaded is not None else None,
        }
        summary = write_outputs(
            run, result, started_at, resumed_from_step, samples, warm is not None, tracked
        )
        manager.finish(timeout=None)
        if mlflow_run is not None:
            mlflow_run.finish("FINISHED")
        limit = config.evaluation.max_retention_loss_increase
        if summary is not None and limit is not None and summary.retention_regressed:
            report_failure(
                f"{RETENTION_REGRESSED}: {retention_message(summary.eval_sets, limit)}", prefix=WARNING_PREFIX
            )
        return exit_codes.SUCCESS, None
    except BaseException:
        if mlflow_run is not None:
            mlflow_run.finish("FAILED")
        raise
    finally:
        if server is not None:
            server.stop()
