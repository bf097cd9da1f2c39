"""Ties checkpoints to the run that made them, so a prefix is never resumed by a different run.

A checkpoint's manifest records the job and the settings a resume must not change (the model,
the data and how it is tokenized, the LoRA shape, and the sharding, which decides the checkpoint's
format). Resuming with other values would continue a
different run on the wrong weights or skip the wrong rows; the job fails instead, before anything
under the prefix is read into training or deleted. Batch size, learning rate and the schedule may
differ: transformers resumes them from the checkpoint's optimizer and scheduler state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from kubesft_api.trainer_config import TrainerConfig
from kubesft_trainer.checkpoints.manifest import CheckpointManifest, JobIdentity, RunStamp
from kubesft_trainer.config.runtime_env import RuntimeEnv

RESUME_CRITICAL = (
    "model.name",
    "model.uri",
    "model.revision",
    "dataset.name",
    "dataset.uri",
    "dataset.subset",
    "dataset.split",
    "dataset.revision",
    "dataset.format",
    "dataset.messagesField",
    "dataset.promptField",
    "dataset.completionField",
    "dataset.textField",
    "dataset.roles",
    "dataset.asChat",
    "dataset.systemPrompt",
    "dataset.systemPromptMode",
    "dataset.mixture",
    "training.maxLength",
    "training.packing",
    "training.sharding",
    "lora.enabled",
)
LORA_SHAPE = ("lora.r", "lora.targetModules", "lora.quantization")
"""Part of the fingerprint when LoRA is on."""
SCHEDULE = (
    "training.perDeviceBatchSize",
    "training.gradientAccumulationSteps",
    "training.learningRate",
    "training.lrScheduler",
    "training.warmupRatio",
    "training.maxSteps",
    "training.epochs",
)


def _values(spec: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    out = {}
    for path in paths:
        section, field = path.split(".")
        out[path] = spec.get(section, {}).get(field)
    return out


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def run_stamp(config: TrainerConfig, env: RuntimeEnv) -> RunStamp:
    """This run's stamp: the job the operator named, the fingerprinted settings and the schedule."""
    spec = config.model_dump(mode="json", by_alias=True)
    # The column read, not how it was spelled: a default left unset records as it always did.
    spec["dataset"]["messagesField"] = config.dataset.conversation_field
    critical = RESUME_CRITICAL + (LORA_SHAPE if config.lora.enabled else ())
    settings = _values(spec, critical)
    job = None
    if env.namespace or env.job_name or env.job_uid:
        job = JobIdentity(namespace=env.namespace, name=env.job_name, uid=env.job_uid)
    return RunStamp(
        job=job, fingerprint=fingerprint(settings), settings=settings, schedule=_values(spec, SCHEDULE)
    )


def _changes(theirs: dict[str, Any] | None, ours: dict[str, Any] | None) -> list[str]:
    """``path: X there, Y here`` for each setting the checkpoint records with another value than
    this run's; settings an older checkpoint does not record are not compared."""
    theirs, ours = theirs or {}, ours or {}
    return [
        f"{path}: {json.dumps(theirs[path])} there, {json.dumps(ours.get(path))} here"
        for path in sorted(theirs)
        if theirs[path] != ours.get(path)
    ]


def refusal(stamp: RunStamp, manifests: list[CheckpointManifest], uri: str) -> str | None:
    """Why the checkpoints under ``uri`` must not be resumed by this run, or None when they may."""
    for manifest in manifests:
        if manifest.settings is None or manifest.fingerprint == stamp.fingerprint:
            continue
        changes = _changes(manifest.settings, stamp.settings)
        if not changes:
            continue
        owner = f" of SFTJob {manifest.job}" if manifest.job is not None else ""
        return (
            f"spec.checkpoints.uri: {uri} holds checkpoints{owner} made with other settings "
            f"({'; '.join(changes)}). Resuming would continue a different run, so nothing under it was "
            "read or deleted: give this job its own checkpoints.uri, or warm-start from one of them with "
            f"checkpoints.resumeFrom (e.g. {uri}/{manifest.name})"
        )
    return None


def schedule_changes(stamp: RunStamp, manifest: CheckpointManifest) -> list[str]:
    """The batch size, learning rate and schedule settings that differ from the checkpoint's."""
    if manifest.schedule is None:
        return []
    return _changes(manifest.schedule, stamp.schedule)
