"""``kubesft run`` flags and the SFTJob spec they build.

Flags that mean what a ``trl sft`` flag means carry its name (``--model_name_or_path``,
``--learning_rate``, ``--use_peft``, …) and a short kebab-case form (``--model``,
``--learning-rate``, ``--lora``). Any other SFTConfig argument given as ``--name value``, as
``trl sft`` accepts it, goes to ``spec.training.extraArgs``; ``--set path=value`` sets any spec
field. The spec's validation problems name the flag that set the field.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubesft_api.sft_config_fields import SFT_CONFIG_FIELDS, closest_field_names, extra_args_problems

GIVEN = "spec_flags"
"""Namespace attribute: spec path -> (the option as typed, its value), in the order given."""

Given = dict[str, tuple[str, Any]]


def boolean(text: str) -> bool:
    """A flag value as ``trl sft`` reads booleans: true/false, yes/no, 1/0."""
    lowered = text.lower()
    if lowered in ("true", "yes", "y", "1", "on"):
        return True
    if lowered in ("false", "no", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def is_location(value: str) -> bool:
    """A URI or absolute path (goes to ``uri``) rather than a Hub id (goes to ``name``)."""
    return "://" in value or value.startswith("/")


@dataclass(frozen=True)
class Flag:
    """One ``run`` flag: its spellings, the spec path it sets and how its value is read."""

    names: tuple[str, ...]
    path: str
    help: str
    type: Callable[[str], Any] | None = str
    kind: str = "value"
    """value | bool (``--x`` or ``--x false``) | const | list | source (Hub id or URI) | file |
    env | set | secret."""
    const: Any = None
    metavar: str | None = None

    def paths(self, value: Any) -> list[tuple[str, Any]]:
        """(spec path, value) pairs that the flag given with ``value`` sets."""
        if self.kind == "source":
            return [(f"{self.path}.{'uri' if is_location(value) else 'name'}", value)]
        if self.kind == "file":
            try:
                return [(self.path, Path(value).expanduser().read_text())]
            except OSError as error:
                raise argparse.ArgumentTypeError(f"cannot read {value}: {error.strerror}") from None
        if self.kind == "secret":
            name, _, key = value.partition(":")
            return [(f"{self.path}.name", name), *([(f"{self.path}.key", key)] if key else [])]
        if self.kind == "set":
            path, raw = value
            return [(path.removeprefix("spec."), yaml.safe_load(raw) if raw else "")]
        return [(self.path, value)]


def _flags() -> tuple[Flag, ...]:
    s, i, f, b = str, integer, number, boolean
    return (
        Flag(("--model_name_or_path", "--model"), "model", "Hub model id, or s3://, pvc:// URI", s, "source"),
        Flag(("--model_revision", "--revision"), "model.revision", "Hub revision (branch, tag, commit)"),
        Flag(("--dtype",), "model.dtype", "weights dtype: auto, bfloat16, float16, float32"),
        Flag(
            ("--trust_remote_code",), "model.trustRemoteCode", "run model code from the checkpoint", b, "bool"
        ),
        Flag(
            ("--chat_template", "--chat-template"),
            "model.chatTemplate",
            "chatml, or an inline Jinja template",
        ),
        Flag(("--chat_template_path",), "model.chatTemplate", "a Jinja template file", s, "file"),
        Flag(
            ("--hf-token-secret",),
            "model.tokenSecret",
            "Secret[:key] with HF_TOKEN",
            s,
            "secret",
            metavar="SECRET",
        ),
        Flag(("--dataset_name", "--dataset"), "dataset", "Hub dataset id, or s3://, pvc:// URI", s, "source"),
        Flag(("--dataset_config", "--subset"), "dataset.subset", "Hub dataset configuration"),
        Flag(("--dataset_train_split", "--split"), "dataset.split", "training split"),
        Flag(("--dataset_test_split", "--eval-split"), "dataset.evalSplit", "evaluation split"),
        Flag(("--eval-fraction",), "dataset.evalFraction", "share of rows held out for evaluation", f),
        Flag(("--dataset_text_field",), "dataset.textField", "column of text-format data"),
        Flag(("--dataset-format",), "dataset.format", "auto, messages, prompt-completion, text"),
        Flag(("--max-samples",), "dataset.maxSamples", "use at most this many rows", i),
        Flag(("--num_train_epochs", "--epochs"), "training.epochs", "passes over the data", f),
        Flag(("--max_steps", "--max-steps"), "training.maxSteps", "optimizer steps (overrides epochs)", i),
        Flag(("--learning_rate", "--learning-rate"), "training.learningRate", "peak learning rate", f),
        Flag(("--lr_scheduler_type", "--lr-scheduler"), "training.lrScheduler", "learning-rate schedule"),
        Flag(("--warmup_ratio", "--warmup-ratio"), "training.warmupRatio", "warm-up share of steps", f),
        Flag(
            ("--per_device_train_batch_size", "--batch-size"), "training.perDeviceBatchSize", "per device", i
        ),
        Flag(("--gradient_accumulation_steps", "--grad-accum"), "training.gradientAccumulationSteps", "", i),
        Flag(("--max_length", "--max-length"), "training.maxLength", "tokens per sequence", i),
        Flag(("--packing",), "training.packing", "pack examples into sequences", b, "bool"),
        Flag(
            ("--padding_free", "--padding-free"), "training.paddingFree", "batches without padding", b, "bool"
        ),
        Flag(("--assistant_only_loss", "--assistant-only-loss"), "training.assistantOnlyLoss", "", b, "bool"),
        Flag(
            ("--completion_only_loss", "--completion-only-loss"), "training.completionOnlyLoss", "", b, "bool"
        ),
        Flag(("--gradient_checkpointing",), "training.gradientCheckpointing", "default true", b, "bool"),
        Flag(("--no_gradient_checkpointing",), "training.gradientCheckpointing", "", None, "const", False),
        Flag(("--precision",), "training.precision", "auto, bf16, fp16, fp32"),
        Flag(("--bf16",), "training.precision", "bf16 mixed precision", None, "const", "bf16"),
        Flag(("--fp16",), "training.precision", "fp16 mixed precision", None, "const", "fp16"),
        Flag(("--seed",), "training.seed", "seed of initialisation and data order", i),
        Flag(("--logging_steps", "--logging-steps"), "training.loggingSteps", "log every N steps", i),
        Flag(("--eval_steps", "--eval-steps"), "training.evalSteps", "evaluate every N steps", i),
        Flag(("--use_peft", "--lora"), "lora.enabled", "train LoRA adapters", b, "bool"),
        Flag(("--lora_r", "--lora-r"), "lora.r", "LoRA rank", i),
        Flag(("--lora_alpha", "--lora-alpha"), "lora.alpha", "LoRA alpha", i),
        Flag(("--lora_dropout", "--lora-dropout"), "lora.dropout", "LoRA dropout", f),
        Flag(("--lora_target_modules", "--lora-target-modules"), "lora.targetModules", "", s, "list"),
        Flag(("--load_in_4bit",), "lora.quantization", "QLoRA on a 4-bit base", None, "const", "4bit"),
        Flag(("--load_in_8bit",), "lora.quantization", "QLoRA on an 8-bit base", None, "const", "8bit"),
        Flag(("--merge-lora",), "lora.mergeOnFinish", "also write the merged model", b, "bool"),
        Flag(("--output_dir", "--output"), "output.uri", "where the model goes: s3:// or pvc:// URI"),
        Flag(("--checkpoints",), "checkpoints.uri", "checkpoint location (s3://…)"),
        Flag(("--save_steps", "--save-steps"), "checkpoints.saveSteps", "checkpoint every N steps", i),
        Flag(("--save_total_limit", "--keep-checkpoints"), "checkpoints.keep", "checkpoints kept", i),
        Flag(("--s3-endpoint",), "checkpoints.endpointUrl", "S3-compatible endpoint URL"),
        Flag(("--s3-region",), "checkpoints.region", "S3 region"),
        Flag(("--s3-secret",), "checkpoints.credentialsSecret.name", "Secret with AWS_* keys"),
        Flag(("--gpus",), "resources.gpusPerNode", "GPUs per pod (0: CPU)", i),
        Flag(("--nodes",), "resources.nodes", "pods to train on", i),
        Flag(("--cpu",), "resources.cpu", "CPU per pod"),
        Flag(("--memory",), "resources.memory", "memory per pod"),
        Flag(("--image",), "resources.image", "trainer image"),
        Flag(("--env",), "resources.env", "KEY=VALUE for the trainer (repeatable)", key_value, "env"),
        Flag(("--mlflow-tracking-uri",), "tracking.mlflow.trackingUri", "MLflow tracking server URL"),
        Flag(("--mlflow-experiment",), "tracking.mlflow.experiment", "MLflow experiment"),
        Flag(("--run_name", "--run-name"), "tracking.mlflow.runName", "MLflow run name (default: the job's)"),
        Flag(("--mlflow-secret",), "tracking.mlflow.credentialsSecret.name", "Secret with MLFLOW_TRACKING_*"),
        Flag(("--queue",), "runPolicy.queueName", "Kueue LocalQueue"),
        Flag(("--backoff-limit",), "runPolicy.backoffLimit", "retries", i),
        Flag(("--set",), "", "PATH=VALUE for any spec field, e.g. training.maxLength=512", key_value, "set"),
    )


FLAGS = _flags()


class _SpecFlag(argparse.Action):
    """Records (option as typed, value) per spec path, so problems can name the flag."""

    def __init__(self, option_strings: Sequence[str], dest: str, flag: Flag, **kwargs: Any) -> None:
        self.flag = flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given: Given = dict(getattr(namespace, GIVEN, None) or {})
        option = option_string or self.flag.names[0]
        value = self.flag.const if self.flag.kind == "const" else values
        try:
            pairs = self.flag.paths(value)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from None
        for path, item in pairs:
            if self.flag.kind == "env":
                previous = list(given.get(path, (option, []))[1])
                item = [*previous, {"name": item[0], "value": item[1]}]
            given[path] = (option, item)
        setattr(namespace, GIVEN, given)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    groups: dict[str, Any] = {}
    for flag in FLAGS:
        section = flag.path.split(".")[0] or "any field"
        group = groups.get(section) or parser.add_argument_group(f"spec.{section}")
        groups[section] = group
        kwargs: dict[str, Any] = {"help": flag.help or None, "default": argparse.SUPPRESS}
        if flag.kind == "bool":
            kwargs.update(nargs="?", const=True, type=flag.type, metavar="BOOL")
        elif flag.kind == "const":
            kwargs.update(nargs=0)
        elif flag.kind == "list":
            kwargs.update(nargs="+", type=flag.type)
        else:
            kwargs.update(type=flag.type, metavar=flag.metavar or flag.names[-1].lstrip("-").upper())
        group.add_argument(*flag.names, action=_SpecFlag, flag=flag, dest=f"flag_{flag.path}", **kwargs)


def sft_config_extras(extras: list[str]) -> tuple[Given, list[str]]:
    """``--name value`` arguments that are SFTConfig arguments, as extraArgs; and problems with the rest."""
    given: Given = {}
    problems: list[str] = []
    index = 0
    while index < len(extras):
        token = extras[index]
        index += 1
        if not token.startswith("--"):
            problems.append(f"unexpected argument {token!r}")
            continue
        name, sep, raw = token[2:].partition("=")
        if not sep:
            has_value = index < len(extras) and not extras[index].startswith("--")
            raw = extras[index] if has_value else "true"
            index += has_value
        key = name.replace("-", "_")
        problem = extra_args_problems([key]).get(key)
        if problem is None:
            given[f"training.extraArgs.{key}"] = (f"--{name}", yaml.safe_load(raw) if raw else "")
        elif key in SFT_CONFIG_FIELDS:
            problems.append(f"--{name}: {problem}")
        else:
            near = closest_field_names(key, candidates=[*SFT_CONFIG_FIELDS, *_flag_names()])
            hint = f" (did you mean {', '.join('--' + n for n in near)}?)" if near else ""
            problems.append(f"unknown flag --{name}{hint}")
    return given, problems


def _flag_names() -> list[str]:
    return [name.lstrip("-") for flag in FLAGS for name in flag.names]


def spec_from_flags(given: Given, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a spec from a file) with every flag's value set at its path."""
    spec: dict[str, Any] = _deep_copy(base or {})
    for path, (_, value) in given.items():
        *parents, leaf = path.split(".")
        node = spec
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return spec


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


_PROBLEM = re.compile(r"^spec\.([A-Za-z0-9_.\[\]]+): (.*)$")


def name_flags(problems: list[str], given: Given) -> list[str]:
    """Each spec problem with the flag that set its field (or the flag that would set it)."""
    hints = {flag.path: flag.names[-1] for flag in FLAGS if flag.kind not in ("const", "set")}
    out = []
    for problem in problems:
        match = _PROBLEM.match(problem)
        if match is None:
            out.append(problem)
            continue
        field, message = match.group(1), match.group(2)
        plain = re.sub(r"\[\d+\]", "", field)
        typed = next((given[p][0] for p in _prefixes(plain) if p in given), None)
        if typed is not None:
            out.append(f"{typed}: {message} (spec.{field})")
            continue
        hint = next((hints[p] for p in _prefixes(plain) if p in hints), None)
        out.append(f"spec.{field}: {message}" + (f" (set it with {hint})" if hint else ""))
    return out


def _prefixes(path: str) -> list[str]:
    """``a.b.c``, ``a.b``, ``a``: the most specific flag wins."""
    parts = path.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]
