"""The trainer's config handling, exit-code contract and small parts, without training."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kubesft_api import exit_codes
from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.config.file import load_config
from kubesft_trainer.config.runtime_env import RuntimeEnv
from kubesft_trainer.config.sft_args import (
    build_sft_config,
    installed_sft_fields,
    precision_flags,
    sft_kwargs,
)
from kubesft_trainer.data.example_view import loss_spans
from kubesft_trainer.errors import ConfigError
from kubesft_trainer.launcher import Outcome, decide, torchrun_args
from kubesft_trainer.reporting.failure_report import ERROR_PREFIX, report_failure
from kubesft_trainer.reporting.progress_tracker import ProgressTracker
from tests.support.trainer import last_stderr_line, run_trainer, trainer_config, write_config


def config(**training: object) -> TrainerConfig:
    raw = trainer_config(Path("/m"), Path("/d.jsonl"), Path("/out"), training=dict(training))
    return TrainerConfig.model_validate(raw)


def kwargs_for(
    cfg: TrainerConfig, installed: set[str] | None = None, cuda: bool = False
) -> dict[str, object]:
    return sft_kwargs(
        cfg,
        output_dir=Path("/tmp/x"),
        has_eval=False,
        progress_bar=False,
        installed=installed or installed_sft_fields(),
        cuda=cuda,
        bf16_capable=cuda,
    )


def test_unknown_extra_arg_is_named_with_the_closest_valid_names() -> None:
    # The spec checks names against the TRL it was generated from; the trainer checks the TRL it runs.
    installed = installed_sft_fields() - {"weight_decay", "adam_beta1"}
    with pytest.raises(ConfigError) as caught:
        kwargs_for(config(extraArgs={"weight_decay": 0.1, "adam_beta1": 0.8, "adam_beta2": 0.9}), installed)
    message = str(caught.value)
    assert "training.extraArgs.weight_decay: not an SFTConfig argument of TRL" in message
    assert "training.extraArgs.adam_beta1: not an SFTConfig argument of TRL" in message
    assert "did you mean adam_beta2" in message
    assert "adam_beta2:" not in message


def test_spec_refuses_unknown_and_managed_extra_args_by_name(tmp_path: Path) -> None:
    raw = trainer_config(tmp_path, tmp_path / "d.jsonl", tmp_path / "out")
    raw["training"]["extraArgs"] = {"lerning_rate": 1, "max_steps": 3}
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path / "c.yaml", raw))
    message = str(caught.value)
    assert "spec.training.extraArgs" in message
    assert "'lerning_rate'" in message and "learning_rate" in message
    assert "'max_steps' is set by kubesft; use spec.training.maxSteps" in message


def test_sft_config_from_the_spec() -> None:
    cfg = config(warmupRatio=0.1, extraArgs={"weight_decay": 0.05, "report_to": "tensorboard"})
    args = build_sft_config(kwargs_for(cfg))
    assert args.max_steps == 12 and args.learning_rate == 1e-3
    assert args.warmup_steps == pytest.approx(0.1)
    assert args.get_warmup_steps(100) == 10
    assert args.bf16 is False and args.fp16 is False
    assert args.use_cpu is True
    assert args.activation_checkpointing is False
    assert args.weight_decay == 0.05
    assert args.report_to == ["tensorboard"], "extraArgs override kubesft's own defaults"
    assert args.save_strategy == "steps" and args.save_steps == 1000
    assert args.eval_strategy == "no"


def test_precision_auto_is_bf16_only_on_capable_gpus() -> None:
    assert precision_flags("auto", cuda=True, bf16_capable=True) == {"bf16": True, "fp16": False}
    assert precision_flags("auto", cuda=True, bf16_capable=False) == {"bf16": False, "fp16": False}
    assert precision_flags("auto", cuda=False, bf16_capable=False) == {"bf16": False, "fp16": False}
    with pytest.raises(ConfigError, match=r"training.precision: fp16 needs a CUDA GPU"):
        precision_flags("fp16", cuda=False, bf16_capable=False)


def test_config_file_errors_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    raw = trainer_config(tmp_path, tmp_path / "d.jsonl", tmp_path / "out", training={"maxSteps": 0})
    with pytest.raises(ConfigError, match=r"spec.training.maxSteps: must be ≥ 1, got 0"):
        load_config(write_config(tmp_path / "c.yaml", raw))


def test_runtime_env_reads_the_pod_environment() -> None:
    env = RuntimeEnv.from_environ(
        {
            "KUBESFT_CONFIG": "/etc/kubesft/config.yaml",
            "KUBESFT_WORK_DIR": "/var/lib/kubesft",
            "KUBESFT_GRACE_SECONDS": "300",
            "KUBESFT_NNODES": "2",
            "KUBESFT_NPROC_PER_NODE": "4",
            "KUBESFT_NODE_RANK": "1",
            "MASTER_ADDR": "job-0.job-nodes",
        }
    )
    assert env.needs_launcher and env.grace_seconds == 300.0
    args = torchrun_args(env, ["--config", "x"])
    assert args[-4:] == ["-m", "kubesft_trainer", "--config", "x"]
    assert "--standalone" not in args
    for flag, value in (("--nnodes", "2"), ("--nproc-per-node", "4"), ("--node-rank", "1")):
        assert args[args.index(flag) + 1] == value
    assert args[args.index("--master-addr") + 1] == "job-0.job-nodes"
    assert args[args.index("--shutdown-timeout") + 1] == "300"
    inside = RuntimeEnv.from_environ({"KUBESFT_NPROC_PER_NODE": "2", "TORCHELASTIC_RUN_ID": "x", "RANK": "1"})
    assert not inside.needs_launcher and not inside.is_rank_zero
    with pytest.raises(ConfigError, match="KUBESFT_NNODES='two' is not an integer"):
        RuntimeEnv.from_environ({"KUBESFT_NNODES": "two"})


def test_launcher_keeps_the_exit_code_that_matters() -> None:
    ranks = range(0, 2)
    ok = [Outcome(0, 0, None), Outcome(1, 0, None)]
    assert decide(ok, ranks, None) == (exit_codes.SUCCESS, None)
    bad_data = [Outcome(0, 65, "row 3 is bad"), Outcome(1, 65, "row 3 is bad")]
    assert decide(bad_data, ranks, "torchrun: failed") == (exit_codes.INVALID_DATA, "row 3 is bad")
    preempted = [Outcome(0, 75, "preempted at step 4"), Outcome(1, 75, None)]
    assert decide(preempted, ranks, "stopped by SIGTERM") == (exit_codes.PREEMPTED, "preempted at step 4")
    crashed = [Outcome(0, 75, None), Outcome(1, 1, "NCCL timeout")]
    assert decide(crashed, ranks, None) == (exit_codes.RUNTIME_FAILURE, "NCCL timeout")
    code, reason = decide([Outcome(0, 0, None)], ranks, "torchrun: exitcode -9")
    assert code == exit_codes.RUNTIME_FAILURE
    assert reason is not None and "rank 1 exited without a result" in reason and "-9" in reason


def test_failure_reason_is_one_line_on_stderr_and_in_an_existing_termination_log(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    stream = io.StringIO()
    report_failure("dataset row 3:\n  role is 'bot'", termination_log=log, stream=stream)
    assert stream.getvalue().splitlines()[-1] == ERROR_PREFIX + "dataset row 3: role is 'bot'"
    assert log.read_text() == "dataset row 3: role is 'bot'\n"
    absent = tmp_path / "absent"
    report_failure("x", termination_log=absent, stream=io.StringIO())
    assert not absent.exists()


def test_progress_report_percent_and_eta() -> None:
    now = [100.0]
    tracker = ProgressTracker(clock=lambda: now[0])
    tracker.start(step=10, total_steps=110)
    now[0] = 120.0
    tracker.update(step=30, loss=1.5, learning_rate=1e-4)
    tracker.add_source(lambda: {"latest_checkpoint": "s3://b/ckpt/checkpoint-30", "resumed_from_step": 10})
    report = tracker.report()
    assert report.step == 30 and report.total_steps == 110
    assert report.percent == pytest.approx(100 * 30 / 110)
    assert report.eta_seconds == pytest.approx(80.0)  # 80 steps left at one step per second
    assert report.latest_checkpoint == "s3://b/ckpt/checkpoint-30"
    wire = report.model_dump(by_alias=True)
    assert {"totalSteps", "etaSeconds", "learningRate", "updatedAt", "resumedFromStep"} <= set(wire)


def test_loss_spans_split_trained_and_ignored_runs() -> None:
    assert loss_spans([-100, -100, 5, 6, -100, 7]) == [
        (0, 2, False),
        (2, 4, True),
        (4, 5, False),
        (5, 6, True),
    ]


def test_cli_exit_codes_for_a_missing_and_an_invalid_config(tmp_path: Path) -> None:
    missing = run_trainer(tmp_path / "missing.yaml", tmp_path / "work")
    assert missing.returncode == exit_codes.INVALID_CONFIG
    assert last_stderr_line(missing).startswith(ERROR_PREFIX + "config file")
    raw = trainer_config(tmp_path, tmp_path / "d.jsonl", tmp_path / "out", training={"learningRate": -1})
    invalid = run_trainer(write_config(tmp_path / "c.yaml", raw), tmp_path / "work")
    assert invalid.returncode == exit_codes.INVALID_CONFIG
    assert "spec.training.learningRate: must be > 0, got -1" in last_stderr_line(invalid)


def test_speed_settings_follow_the_hardware_and_the_installed_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesft_trainer.config.tuning import Accelerator, attention_implementation, tuned_sft_defaults

    cpu = Accelerator(cuda=False, bf16_capable=False)
    ampere = Accelerator(cuda=True, bf16_capable=True, capability=(8, 0))
    turing = Accelerator(cuda=True, bf16_capable=False, capability=(7, 5))
    assert Accelerator.detect() == cpu, "this machine has no CUDA GPU"
    for name in ("flash_attn", "liger_kernel"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    assert attention_implementation(ampere, packing=True) == "sdpa"
    assert tuned_sft_defaults(ampere) == {}

    # The packages' presence is all kubesft looks at before handing them to transformers and TRL.
    monkeypatch.syspath_prepend(str(tmp_path))
    assert attention_implementation(ampere, packing=True) == "flash_attention_2"
    assert attention_implementation(ampere, packing=False) == "sdpa"
    assert attention_implementation(cpu, packing=True) == "sdpa"
    assert tuned_sft_defaults(ampere) == {"use_liger_kernel": True}
    assert tuned_sft_defaults(turing) == {}, "Liger's kernels fail before Ampere"
    assert tuned_sft_defaults(cpu) == {}

    cfg = config(extraArgs={"use_liger_kernel": False})
    kwargs = sft_kwargs(
        cfg,
        output_dir=tmp_path,
        has_eval=False,
        progress_bar=False,
        installed=installed_sft_fields(),
        cuda=True,
        bf16_capable=True,
        tuned=tuned_sft_defaults(ampere),
    )
    assert kwargs["use_liger_kernel"] is False, "extraArgs override the speed settings"
    assert kwargs["bf16"] is True
