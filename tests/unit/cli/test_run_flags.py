"""``kubesft run`` flags to SFTJob spec: trl sft's names and the short forms, offline (--dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from kubesft.commands.handlers import generated_name
from kubesft.commands.run_flags import FLAGS
from kubesft_api.sftjob import SFTJobSpec
from kubesft_operator import names
from tests.unit.cli.conftest import SPEC_FLAGS, Cli


def dry_run(cli: Cli, *flags: str) -> dict[str, Any]:
    result = cli("run", "--name", "job", *flags, "--dry-run")
    assert result.code == 0, result.err
    assert result.err == ""
    document: dict[str, Any] = yaml.safe_load(result.out)
    return document


def spec_of(cli: Cli, *flags: str) -> dict[str, Any]:
    spec: dict[str, Any] = dry_run(cli, *SPEC_FLAGS, *flags)["spec"]
    return spec


def test_the_issue_example_builds_exactly_these_fields(cli: Cli) -> None:
    document = dry_run(
        cli,
        *("--model", "HuggingFaceTB/SmolLM2-135M", "--dataset", "HuggingFaceTB/smoltalk"),
        *("--chat-template", "chatml", "--output", "s3://my-bucket/sft/out"),
        *("--max-steps", "1000", "--learning-rate", "5e-5", "--lora"),
    )
    assert document == {
        "apiVersion": "kubesft.io/v1alpha1",
        "kind": "SFTJob",
        "metadata": {"name": "job"},
        "spec": {
            "model": {"name": "HuggingFaceTB/SmolLM2-135M", "chatTemplate": "chatml"},
            "dataset": {"name": "HuggingFaceTB/smoltalk"},
            "training": {"maxSteps": 1000, "learningRate": 5e-5},
            "lora": {"enabled": True},
            "output": {"uri": "s3://my-bucket/sft/out"},
        },
    }


@pytest.mark.parametrize(
    ("trl", "short", "value", "section", "field", "expected"),
    [
        ("--model_revision", "--revision", "v2", "model", "revision", "v2"),
        (
            "--dataset_config",
            "--subset",
            "everyday-conversations",
            "dataset",
            "subset",
            "everyday-conversations",
        ),
        ("--dataset_train_split", "--split", "train_sft", "dataset", "split", "train_sft"),
        ("--dataset_test_split", "--eval-split", "test_sft", "dataset", "evalSplit", "test_sft"),
        ("--num_train_epochs", "--epochs", "3", "training", "epochs", 3.0),
        ("--max_steps", "--max-steps", "50", "training", "maxSteps", 50),
        ("--learning_rate", "--learning-rate", "1e-4", "training", "learningRate", 1e-4),
        ("--lr_scheduler_type", "--lr-scheduler", "cosine", "training", "lrScheduler", "cosine"),
        ("--warmup_ratio", "--warmup-ratio", "0.1", "training", "warmupRatio", 0.1),
        ("--per_device_train_batch_size", "--batch-size", "4", "training", "perDeviceBatchSize", 4),
        ("--gradient_accumulation_steps", "--grad-accum", "8", "training", "gradientAccumulationSteps", 8),
        ("--max_length", "--max-length", "512", "training", "maxLength", 512),
        ("--logging_steps", "--logging-steps", "5", "training", "loggingSteps", 5),
        ("--eval_steps", "--eval-steps", "25", "training", "evalSteps", 25),
        ("--lora_r", "--lora-r", "8", "lora", "r", 8),
        ("--lora_alpha", "--lora-alpha", "16", "lora", "alpha", 16),
        ("--lora_dropout", "--lora-dropout", "0.1", "lora", "dropout", 0.1),
        ("--save_steps", "--save-steps", "100", "checkpoints", "saveSteps", 100),
        ("--save_total_limit", "--keep-checkpoints", "2", "checkpoints", "keep", 2),
        ("--chat_template", "--chat-template", "chatml", "model", "chatTemplate", "chatml"),
    ],
)
def test_trl_names_and_short_forms_set_the_same_field(
    cli: Cli, trl: str, short: str, value: str, section: str, field: str, expected: Any
) -> None:
    assert spec_of(cli, trl, value)[section][field] == expected
    assert spec_of(cli, short, value)[section][field] == expected


def test_a_model_or_dataset_location_goes_to_uri_and_a_hub_id_to_name(cli: Cli) -> None:
    spec = dry_run(
        cli,
        *("--model_name_or_path", "s3://bucket/models/base", "--dataset_name", "/data/chat.jsonl"),
        *("--output_dir", "pvc://claim/out"),
    )["spec"]
    assert spec["model"] == {"uri": "s3://bucket/models/base"}
    assert spec["dataset"] == {"uri": "/data/chat.jsonl"}
    assert spec["output"] == {"uri": "pvc://claim/out"}
    assert spec_of(cli)["model"] == {"name": "HuggingFaceTB/SmolLM2-135M"}


def test_boolean_flags_as_trl_reads_them(cli: Cli) -> None:
    assert spec_of(cli, "--packing")["training"]["packing"] is True
    assert spec_of(cli, "--packing", "false")["training"]["packing"] is False
    assert spec_of(cli, "--use_peft")["lora"]["enabled"] is True
    assert spec_of(cli, "--lora", "no")["lora"]["enabled"] is False
    assert spec_of(cli, "--trust_remote_code")["model"]["trustRemoteCode"] is True
    assert (
        spec_of(cli, "--assistant_only_loss", "--chat-template", "chatml")["training"]["assistantOnlyLoss"]
        is True
    )
    assert spec_of(cli, "--gradient_checkpointing", "false")["training"]["gradientCheckpointing"] is False
    assert spec_of(cli, "--no_gradient_checkpointing")["training"]["gradientCheckpointing"] is False


def test_flags_that_choose_a_value(cli: Cli) -> None:
    assert spec_of(cli, "--bf16")["training"]["precision"] == "bf16"
    assert spec_of(cli, "--fp16")["training"]["precision"] == "fp16"
    assert spec_of(cli, "--precision", "fp32")["training"]["precision"] == "fp32"
    assert spec_of(cli, "--use_peft", "--load_in_4bit")["lora"] == {"enabled": True, "quantization": "4bit"}
    assert spec_of(cli, "--lora", "--load_in_8bit")["lora"]["quantization"] == "8bit"


def test_kubesft_flags_for_storage_resources_and_policy(cli: Cli) -> None:
    spec = spec_of(
        cli,
        *(
            "--checkpoints",
            "s3://bucket/ckpt",
            "--s3-endpoint",
            "http://minio:9000",
            "--s3-region",
            "eu-west-1",
        ),
        *("--s3-secret", "s3-creds", "--hf-token-secret", "hf:TOKEN", "--gpus", "2", "--nodes", "2"),
        *("--cpu", "8", "--memory", "64Gi", "--image", "registry/trainer:1", "--queue", "team-a"),
        *(
            "--backoff-limit",
            "5",
            "--env",
            "A=1",
            "--env",
            "B=two",
            "--lora_target_modules",
            "q_proj",
            "v_proj",
        ),
        *("--eval-fraction", "0.1", "--max-samples", "1000", "--dataset-format", "messages", "--merge-lora"),
    )
    assert spec["checkpoints"] == {
        "uri": "s3://bucket/ckpt",
        "endpointUrl": "http://minio:9000",
        "region": "eu-west-1",
        "credentialsSecret": {"name": "s3-creds"},
    }
    assert spec["model"]["tokenSecret"] == {"name": "hf", "key": "TOKEN"}
    assert spec["resources"] == {
        "gpusPerNode": 2,
        "nodes": 2,
        "cpu": "8",
        "memory": "64Gi",
        "image": "registry/trainer:1",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}],
    }
    assert spec["runPolicy"] == {"queueName": "team-a", "backoffLimit": 5}
    assert spec["lora"] == {"targetModules": ["q_proj", "v_proj"], "mergeOnFinish": True}
    assert spec["dataset"]["evalFraction"] == 0.1
    assert spec["dataset"]["maxSamples"] == 1000
    assert spec["dataset"]["format"] == "messages"


def test_mlflow_flags_fill_the_tracking_section(cli: Cli) -> None:
    spec = spec_of(
        cli,
        *("--mlflow-tracking-uri", "http://mlflow.mlflow:5000", "--mlflow-experiment", "smol"),
        *("--run_name", "first", "--mlflow-secret", "mlflow-creds"),
    )
    assert spec["tracking"] == {
        "mlflow": {
            "trackingUri": "http://mlflow.mlflow:5000",
            "experiment": "smol",
            "runName": "first",
            "credentialsSecret": {"name": "mlflow-creds"},
        }
    }


def test_a_bad_tracking_uri_names_its_flag(cli: Cli) -> None:
    result = cli("run", "--name", "job", *SPEC_FLAGS, "--mlflow-tracking-uri", "mlflow:5000", "--dry-run")
    assert result.code == 1
    assert "--mlflow-tracking-uri: " in result.err and "(spec.tracking.mlflow.trackingUri)" in result.err, (
        result.err
    )
    missing = cli("run", "--name", "job", *SPEC_FLAGS, "--mlflow-tracking-uri", "http://m:5000", "--dry-run")
    assert "spec.tracking.mlflow.experiment: " in missing.err and "--mlflow-experiment" in missing.err


def test_set_writes_any_field_with_a_yaml_value(cli: Cli) -> None:
    spec = spec_of(cli, "--set", "training.maxLength=512", "--set", "spec.resources.nodeSelector.pool=gpu")
    assert spec["training"]["maxLength"] == 512
    assert spec["resources"]["nodeSelector"] == {"pool": "gpu"}


def test_other_sft_config_arguments_go_to_extra_args_as_trl_sft_takes_them(cli: Cli) -> None:
    spec = spec_of(
        cli, "--weight_decay", "0.01", "--neftune_noise_alpha=5", "--torch_compile", "--optim", "adamw_8bit"
    )
    assert spec["training"]["extraArgs"] == {
        "weight_decay": 0.01,
        "neftune_noise_alpha": 5,
        "torch_compile": True,
        "optim": "adamw_8bit",
    }


def test_a_chat_template_file_is_read_into_the_spec(cli: Cli, tmp_path: Path) -> None:
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}")
    assert (
        spec_of(cli, "--chat_template_path", str(template))["model"]["chatTemplate"] == template.read_text()
    )


def test_flags_override_a_file_and_keep_the_rest(cli: Cli, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubesft.io/v1alpha1",
                "kind": "SFTJob",
                "metadata": {"name": "from-file", "namespace": "team", "labels": {"team": "nlp"}},
                "spec": {
                    "model": {"name": "HuggingFaceTB/SmolLM2-135M"},
                    "dataset": {"name": "HuggingFaceTB/smoltalk"},
                    "training": {"maxSteps": 10, "packing": True},
                    "output": {"uri": "s3://bucket/out"},
                },
            }
        )
    )
    result = cli("run", "-f", str(job), "--max-steps", "20", "--label", "run=2", "--dry-run")
    assert result.code == 0, result.err
    document = yaml.safe_load(result.out)
    assert document["metadata"] == {
        "name": "from-file",
        "namespace": "team",
        "labels": {"team": "nlp", "run": "2"},
    }
    assert document["spec"]["training"] == {"maxSteps": 20, "packing": True}
    renamed = yaml.safe_load(cli("run", "-f", str(job), "--name", "other", "-n", "prod", "--dry-run").out)
    assert renamed["metadata"]["name"] == "other" and renamed["metadata"]["namespace"] == "prod"


def test_without_a_name_one_is_made_from_the_model(cli: Cli) -> None:
    result = cli("run", *SPEC_FLAGS, "--dry-run")
    name = yaml.safe_load(result.out)["metadata"]["name"]
    assert name.startswith("smollm2-135m-") and len(name) == len("smollm2-135m-") + 6
    for spec, prefix in (
        ({"model": {"uri": "s3://bucket/models/Qwen2.5-0.5B/"}}, "qwen2-5-0-5b-"),
        ({"model": {"name": "org/123-base"}}, "sft-123-base-"),
        ({"model": {"name": "org/" + "x" * 200}}, "x" * 40 + "-"),
        ({}, "sft-"),
    ):
        made = generated_name(spec)
        assert made.startswith(prefix), made
        assert names.is_dns_label(made), made
        assert generated_name(spec) != made


def _field_aliases(model: type[BaseModel], path: list[str]) -> bool:
    """Whether the camelCase ``path`` names a field of ``model`` (or a key of a dict field)."""
    if not path:
        return True
    for name, info in model.model_fields.items():
        if (info.alias or name) == path[0]:
            annotation = info.annotation
            inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
            models = [a for a in inner if issubclass(a, BaseModel)]
            return _field_aliases(models[0], path[1:]) if models else len(path) == 1
    return False


def test_every_flag_names_a_real_spec_field() -> None:
    for flag in FLAGS:
        if flag.kind == "set":
            continue
        paths = [f"{flag.path}.name", f"{flag.path}.uri"] if flag.kind == "source" else [flag.path]
        for path in paths:
            assert _field_aliases(SFTJobSpec, path.split(".")), f"{flag.names[0]} -> spec.{path}"
